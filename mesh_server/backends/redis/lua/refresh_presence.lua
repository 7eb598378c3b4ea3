-- refresh_presence: deadline = now + TTL for each given room the connection is a member of;
-- a member whose presence had expired becomes present again and "join" is published.
-- KEYS[1] = {ns}deadlines, then per room i (1-based, in ARGV order):
-- KEYS[2i] = {ns}room:{room}:members, KEYS[2i + 1] = {ns}room:{room}:presence
-- ARGV[1] = namespace, ARGV[2] = connection id, ARGV[3..] = room, ttl_ms, room, ttl_ms, ...
local conn = ARGV[2]
local now, ts = now_ms()
for i = 3, #ARGV, 2 do
  local room, ttl = ARGV[i], tonumber(ARGV[i + 1])
  local members, presence = KEYS[i - 1], KEYS[i]
  if redis.call('SISMEMBER', members, conn) == 1 then
    redis.call('ZADD', KEYS[1], now + ttl, entry('p', room, conn))
    if redis.call('SADD', presence, conn) == 1 then
      publish_presence('join', room, conn, ts, nil)
    end
  end
end
return 0
