-- unregister_connection: end presence (one "leave" per present room), drop memberships,
-- metadata and the routing entry of one connection (PROTOCOL §5.3; also dead-instance cleanup).
-- KEYS[1] = {ns}conn:{id}:rooms
-- ARGV[1] = namespace, ARGV[2] = connection id, ARGV[3..] = extra rooms to check
local extra = {}
for i = 3, #ARGV do table.insert(extra, ARGV[i]) end
remove_connection(ARGV[2], extra)
return 1
