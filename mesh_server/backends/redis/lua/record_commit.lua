-- record_commit: store a record's new value with version n + 1 iff it is still at version n of
-- the same incarnation, and publish the update event (commit step of the write, protocol.md §11.3).
-- An incarnation is a random token set when a record is created (version 1), so a record that
-- was deleted and re-created up to the same version never matches a cached older state.
-- KEYS[1] = {ns}record:{id} (hash: v = value JSON, n = version, i = incarnation)
-- ARGV[1] = namespace, ARGV[2] = expected version n (0 = absent), ARGV[3] = expected
-- incarnation ("" for records stored before incarnations existed), ARGV[4] = incarnation of a
-- record created now (used iff n = 0), ARGV[5] = new value JSON, ARGV[6] = event channel,
-- ARGV[7] = event payload (built by the caller)
-- Returns {1} on commit; on a conflict {0, value or nil, version or nil, incarnation or nil},
-- the current state, so that the caller re-reads nothing before retrying.
local current = redis.call('HMGET', KEYS[1], 'v', 'n', 'i')
local expected = tonumber(ARGV[2])
if tonumber(current[2] or '0') ~= expected or (expected > 0 and (current[3] or '') ~= ARGV[3]) then
  return {0, current[1], current[2], current[3]}
end
if expected == 0 then
  redis.call('HSET', KEYS[1], 'v', ARGV[5], 'n', '1', 'i', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[5], 'n', string.format('%d', expected + 1))
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {1}
