-- claim_instance: atomically claim a registered instance whose heartbeat lapsed (§13.4).
-- KEYS[1] = {ns}instance:{id}:claim
-- ARGV[1] = namespace, ARGV[2] = instance id, ARGV[3] = claim TTL in ms
-- Returns false if alive, unregistered or claimed by someone else; else its connection ids.
local instance = ARGV[2]
if redis.call('EXISTS', NS .. 'instance:' .. instance .. ':hb') == 1 then return false end
if redis.call('SISMEMBER', NS .. 'instances', instance) == 0 then return false end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', tonumber(ARGV[3])) then return false end
return redis.call('SMEMBERS', NS .. 'instance:' .. instance .. ':conns')
