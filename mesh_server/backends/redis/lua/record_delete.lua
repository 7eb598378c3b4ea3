-- record_delete: remove value and version and publish the deletion event (protocol.md §11.6).
-- KEYS[1] = {ns}record:{id}
-- ARGV[1] = namespace, ARGV[2] = event channel, ARGV[3] = record id as a JSON string literal
-- Returns the last version, or false (nil) if the record was absent (nothing published).
local version = redis.call('HGET', KEYS[1], 'n')
if not version then return false end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2],
  '{"t":"deleted","recordId":' .. ARGV[3] .. ',"version":' .. version .. '}')
return tonumber(version)
