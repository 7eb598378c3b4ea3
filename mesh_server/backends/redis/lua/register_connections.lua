-- register_connections: routing entries (connection -> instance) and initial metadata.
-- KEYS[1] = {ns}conns, KEYS[2] = {ns}instance:{id}:conns, KEYS[3] = {ns}conn-meta
-- ARGV[1] = namespace, ARGV[2] = instance id,
-- ARGV[3..] = connection id, has metadata ("1"/"0"), metadata JSON, ... (triples)
local instance = ARGV[2]
for i = 3, #ARGV, 3 do
  local conn = ARGV[i]
  redis.call('HSET', KEYS[1], conn, instance)
  redis.call('SADD', KEYS[2], conn)
  if ARGV[i + 1] == '1' then redis.call('HSET', KEYS[3], conn, ARGV[i + 2]) end
end
return 1
