-- release_instance: after cleaning a claimed (or closing) instance's connections, remove its
-- registry entries, unless it came back meanwhile (its heartbeat exists again).
-- KEYS[1] = {ns}instance:{id}:claim, KEYS[2] = {ns}instance:{id}:hb,
-- KEYS[3] = {ns}instance:{id}:conns, KEYS[4] = {ns}instances, KEYS[5] = {ns}deadlines,
-- KEYS[6] = {ns}rooms, KEYS[7] = {ns}conn-meta, KEYS[8] = {ns}conns
-- Dynamic keys (not in KEYS): for each connection left in KEYS[3], {ns}conn:{id}:rooms and the
-- members/presence/states keys of each of its rooms.
-- ARGV[1] = namespace, ARGV[2] = instance id, ARGV[3] = "1" to also drop the heartbeat (close)
if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) end
if redis.call('EXISTS', KEYS[2]) == 0 then
  local k = { deadlines = KEYS[5], rooms = KEYS[6], conn_meta = KEYS[7], conns = KEYS[8],
              instance_conns = KEYS[3] }
  for _, conn in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    remove_connection(conn, {}, k)
  end
  redis.call('SREM', KEYS[4], ARGV[2])
  redis.call('DEL', KEYS[3])
end
redis.call('DEL', KEYS[1])
return 1
