-- metadata_cas: store a metadata value iff the stored one is still what the caller read
-- (commit step of merge strategies, protocol.md §12).
-- KEYS[1] = {ns}conn-meta or {ns}room-meta (hash: id -> JSON)
-- ARGV[1] = namespace, ARGV[2] = field (connection id or room), ARGV[3] = "1" if a value was
-- read, ARGV[4] = the value read (JSON text), ARGV[5] = the new value (JSON text)
-- Returns 1 on commit, 0 on conflict.
local current = redis.call('HGET', KEYS[1], ARGV[2])
if ARGV[3] == '1' then
  if current ~= ARGV[4] then return 0 end
elseif current then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[5])
return 1
