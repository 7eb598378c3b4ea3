-- set_presence_state: replace the state (and its expiry) of a present connection.
-- KEYS[1] = {ns}room:{room}:states, KEYS[2] = {ns}room:{room}:presence, KEYS[3] = {ns}deadlines
-- ARGV[1] = namespace, ARGV[2] = room, ARGV[3] = connection id, ARGV[4] = state as JSON text,
-- ARGV[5] = expiry in ms or "" (none), ARGV[6] = "1" for silent
-- Returns 0 (nothing stored) if the connection is not present, else 1.
local room, conn, state = ARGV[2], ARGV[3], ARGV[4]
if redis.call('SISMEMBER', KEYS[2], conn) == 0 then return 0 end
local now, ts = now_ms()
redis.call('HSET', KEYS[1], conn, state)
if ARGV[5] == '' then
  redis.call('ZREM', KEYS[3], entry('s', room, conn))
else
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), entry('s', room, conn))
end
if ARGV[6] ~= '1' then publish_presence('state', room, conn, ts, state) end
return 1
