-- join_room: membership and, for a tracked room, presence with a backend-clock deadline;
-- optionally only if the connection is registered, telling its instance (one atomic step, so
-- a connection that unregisters meanwhile cannot be left with a membership, §13.2).
-- KEYS[1] = {ns}room:{room}:members, KEYS[2] = {ns}room:{room}:presence,
-- KEYS[3] = {ns}deadlines, KEYS[4] = {ns}rooms, KEYS[5] = {ns}conn:{id}:rooms,
-- KEYS[6] = {ns}conns (hash: connection id -> instance id)
-- ARGV[1] = namespace, ARGV[2] = room, ARGV[3] = connection id,
-- ARGV[4] = presence TTL in ms, or "" for an untracked room,
-- ARGV[5] = "1" to join only a registered connection and publish ARGV[6] (an inbox envelope)
-- to its instance's inbox, "" to join unconditionally
-- Returns false if ARGV[5] is "1" and the connection is not registered (nothing changed), else
-- {joined_presence (0/1), present ids}. Publishes "join" only if not already present.
local room, conn, ttl = ARGV[2], ARGV[3], ARGV[4]
local owner = nil
if ARGV[5] == '1' then
  owner = redis.call('HGET', KEYS[6], conn)
  if not owner then return false end
end
redis.call('SADD', KEYS[1], conn)
redis.call('SADD', KEYS[4], room)
redis.call('SADD', KEYS[5], room)
local result = {0, {}}
if ttl ~= '' then
  local now, ts = now_ms()
  redis.call('ZADD', KEYS[3], now + tonumber(ttl), entry('p', room, conn))
  local joined = redis.call('SADD', KEYS[2], conn)
  if joined == 1 then publish_presence('join', room, conn, ts, nil) end
  result = {joined, redis.call('SMEMBERS', KEYS[2])}
end
if owner then redis.call('PUBLISH', NS .. 'inbox:' .. owner, ARGV[6]) end
return result
