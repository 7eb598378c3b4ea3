-- unregister_connection: end presence (one "leave" per present room), drop memberships,
-- metadata and the routing entry of one connection (protocol.md §5.3; also dead-instance cleanup).
-- KEYS[1] = {ns}conn:{id}:rooms, KEYS[2] = {ns}deadlines, KEYS[3] = {ns}rooms,
-- KEYS[4] = {ns}conn-meta, KEYS[5] = {ns}conns, KEYS[6] = {ns}instance:{owner}:conns
-- Dynamic keys (not in KEYS): the members/presence/states keys of each room found in KEYS[1]
-- (and of the extra rooms).
-- ARGV[1] = namespace, ARGV[2] = connection id, ARGV[3..] = extra rooms to check
local extra = {}
for i = 3, #ARGV do table.insert(extra, ARGV[i]) end
remove_connection(ARGV[2], extra,
  { deadlines = KEYS[2], rooms = KEYS[3], conn_meta = KEYS[4], conns = KEYS[5],
    instance_conns = KEYS[6] })
return 1
