-- send_to_connection: route an envelope to the inbox of the connection's instance (one call).
-- KEYS[1] = {ns}conns (hash: connection id -> instance id)
-- ARGV[1] = namespace, ARGV[2] = connection id, ARGV[3] = envelope bytes
-- Returns 1 if published, 0 if the connection is not registered.
local instance = redis.call('HGET', KEYS[1], ARGV[2])
if not instance then return 0 end
redis.call('PUBLISH', NS .. 'inbox:' .. instance, ARGV[3])
return 1
