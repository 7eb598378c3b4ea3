-- clear_room: remove every member (one "leave" per present one), states and room metadata.
-- KEYS[1] = {ns}room:{room}:members
-- ARGV[1] = namespace, ARGV[2] = room
-- Returns the ids that were members.
local room = ARGV[2]
local _, ts = now_ms()
local members = redis.call('SMEMBERS', KEYS[1])
for _, conn in ipairs(members) do
  end_presence(room, conn, ts)
  redis.call('SREM', conn_rooms_key(conn), room)
  redis.call('ZREM', DEADLINES, entry('s', room, conn))
end
redis.call('DEL', KEYS[1], room_key(room, 'presence'), room_key(room, 'states'))
redis.call('SREM', ROOMS, room)
redis.call('HDEL', NS .. 'room-meta', room)
return members
