-- clear_room: remove every member (one "leave" per present one), states and room metadata.
-- KEYS[1] = {ns}room:{room}:members, KEYS[2] = {ns}room:{room}:presence,
-- KEYS[3] = {ns}room:{room}:states, KEYS[4] = {ns}deadlines, KEYS[5] = {ns}rooms,
-- KEYS[6] = {ns}room-meta
-- Dynamic keys (not in KEYS): {ns}conn:{id}:rooms of every member found in KEYS[1].
-- ARGV[1] = namespace, ARGV[2] = room
-- Returns the ids that were members.
local room = ARGV[2]
local _, ts = now_ms()
local members = redis.call('SMEMBERS', KEYS[1])
for _, conn in ipairs(members) do
  end_presence(room, conn, ts, KEYS[2], KEYS[3], KEYS[4])
  redis.call('SREM', conn_rooms_key(conn), room)
  redis.call('ZREM', KEYS[4], entry('s', room, conn))
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SREM', KEYS[5], room)
redis.call('HDEL', KEYS[6], room)
return members
