-- claim_instance: atomically claim a registered instance whose heartbeat lapsed (§13.4).
-- KEYS[1] = {ns}instance:{id}:claim, KEYS[2] = {ns}instance:{id}:hb, KEYS[3] = {ns}instances,
-- KEYS[4] = {ns}instance:{id}:conns
-- ARGV[1] = namespace, ARGV[2] = instance id, ARGV[3] = claim TTL in ms
-- Returns false if alive, unregistered or claimed by someone else; else its connection ids.
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 0 then return false end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', tonumber(ARGV[3])) then return false end
return redis.call('SMEMBERS', KEYS[4])
