-- release_instance: after cleaning a claimed (or closing) instance's connections, remove its
-- registry entries, unless it came back meanwhile (its heartbeat exists again).
-- KEYS[1] = {ns}instance:{id}:claim
-- ARGV[1] = namespace, ARGV[2] = instance id, ARGV[3] = "1" to also drop the heartbeat (close)
local instance = ARGV[2]
local hb = NS .. 'instance:' .. instance .. ':hb'
if ARGV[3] == '1' then redis.call('DEL', hb) end
if redis.call('EXISTS', hb) == 0 then
  for _, conn in ipairs(redis.call('SMEMBERS', NS .. 'instance:' .. instance .. ':conns')) do
    remove_connection(conn, {})
  end
  redis.call('SREM', NS .. 'instances', instance)
  redis.call('DEL', NS .. 'instance:' .. instance .. ':conns')
end
redis.call('DEL', KEYS[1])
return 1
