-- join_room: membership and, for a tracked room, presence with a backend-clock deadline.
-- KEYS[1] = {ns}room:{room}:members
-- ARGV[1] = namespace, ARGV[2] = room, ARGV[3] = connection id,
-- ARGV[4] = presence TTL in ms, or "" for an untracked room
-- Returns {joined_presence (0/1), present ids}. Publishes "join" only if not already present.
local room, conn, ttl = ARGV[2], ARGV[3], ARGV[4]
redis.call('SADD', KEYS[1], conn)
redis.call('SADD', ROOMS, room)
redis.call('SADD', conn_rooms_key(conn), room)
if ttl == '' then return {0, {}} end
local now, ts = now_ms()
redis.call('ZADD', DEADLINES, now + tonumber(ttl), entry('p', room, conn))
local joined = redis.call('SADD', room_key(room, 'presence'), conn)
if joined == 1 then publish_presence('join', room, conn, ts, nil) end
return {joined, redis.call('SMEMBERS', room_key(room, 'presence'))}
