-- leave_room: remove membership, presence and state; publish "leave" if it was present.
-- KEYS[1] = {ns}room:{room}:members, KEYS[2] = {ns}room:{room}:presence,
-- KEYS[3] = {ns}room:{room}:states, KEYS[4] = {ns}deadlines, KEYS[5] = {ns}rooms,
-- KEYS[6] = {ns}conn:{id}:rooms
-- ARGV[1] = namespace, ARGV[2] = room, ARGV[3] = connection id
-- Returns 1 if the connection was a member, else 0.
local room, conn = ARGV[2], ARGV[3]
local _, ts = now_ms()
end_presence(room, conn, ts, KEYS[2], KEYS[3], KEYS[4])
redis.call('SREM', KEYS[6], room)
if drop_member(room, conn, KEYS[1], KEYS[5]) then return 1 end
return 0
