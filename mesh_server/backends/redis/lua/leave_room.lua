-- leave_room: remove membership, presence and state; publish "leave" if it was present.
-- KEYS[1] = {ns}room:{room}:members
-- ARGV[1] = namespace, ARGV[2] = room, ARGV[3] = connection id
-- Returns 1 if the connection was a member, else 0.
local room, conn = ARGV[2], ARGV[3]
local _, ts = now_ms()
end_presence(room, conn, ts)
redis.call('SREM', conn_rooms_key(conn), room)
if drop_member(room, conn) then return 1 end
return 0
