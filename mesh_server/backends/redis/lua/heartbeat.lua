-- heartbeat: (re)create the instance's heartbeat key and registry entry (protocol.md §13.3, §13.5).
-- KEYS[1] = {ns}instance:{id}:hb, KEYS[2] = {ns}instances
-- ARGV[1] = namespace, ARGV[2] = instance id, ARGV[3] = TTL in ms
-- Returns 1 if heartbeat and registration were both present before, else 0.
local alive = redis.call('EXISTS', KEYS[1])
local registered = redis.call('SADD', KEYS[2], ARGV[2]) == 0
redis.call('SET', KEYS[1], '1', 'PX', tonumber(ARGV[3]))
if alive == 1 and registered then return 1 end
return 0
