-- record_commit: store a record's new value with version n + 1 iff its version is still n,
-- and publish the update event (commit step of the optimistic write, PROTOCOL §11.3).
-- KEYS[1] = {ns}record:{id} (hash: v = value JSON, n = version)
-- ARGV[1] = namespace, ARGV[2] = expected version n (0 = absent), ARGV[3] = new value JSON,
-- ARGV[4] = event channel, ARGV[5] = event payload (built by the caller)
-- Returns 1 on commit, 0 on a version conflict.
local current = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local expected = tonumber(ARGV[2])
if current ~= expected then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'n', string.format('%d', expected + 1))
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
