-- clear_presence_state: remove the state; publish "state" with null iff a state existed.
-- KEYS[1] = {ns}room:{room}:states, KEYS[2] = {ns}room:{room}:presence, KEYS[3] = {ns}deadlines
-- ARGV[1] = namespace, ARGV[2] = room, ARGV[3] = connection id
-- Returns 0 if the connection is not present, else 1.
local room, conn = ARGV[2], ARGV[3]
if redis.call('SISMEMBER', KEYS[2], conn) == 0 then return 0 end
if redis.call('HDEL', KEYS[1], conn) == 1 then
  redis.call('ZREM', KEYS[3], entry('s', room, conn))
  local _, ts = now_ms()
  publish_presence('state', room, conn, ts, 'null')
end
return 1
