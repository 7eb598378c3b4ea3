-- refresh_presence: deadline = now + TTL for each given room the connection is a member of;
-- a member whose presence had expired becomes present again and "join" is published.
-- KEYS[1] = {ns}deadlines
-- ARGV[1] = namespace, ARGV[2] = connection id, ARGV[3..] = room, ttl_ms, room, ttl_ms, ...
local conn = ARGV[2]
local now, ts = now_ms()
for i = 3, #ARGV, 2 do
  local room, ttl = ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('SISMEMBER', room_key(room, 'members'), conn) == 1 then
    redis.call('ZADD', KEYS[1], now + ttl, entry('p', room, conn))
    if redis.call('SADD', room_key(room, 'presence'), conn) == 1 then
      publish_presence('join', room, conn, ts, nil)
    end
  end
end
return 0
