-- sweep_presence: remove due presence and state entries, publishing one event per entry.
-- Atomic, so with any number of sweeping instances each expiry yields exactly one event.
-- KEYS[1] = {ns}deadlines
-- Dynamic keys (not in KEYS): {ns}room:{room}:presence and :states of each due entry's room.
-- ARGV[1] = namespace, ARGV[2] = most entries to handle in this call
-- Returns the number of entries that expired (presence ended or state removed).
local now, ts = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local expired = 0
for _, e in ipairs(due) do
  redis.call('ZREM', KEYS[1], e)
  local kind, room, conn = decode_entry(e)
  if kind == 'p' then
    if end_presence(room, conn, ts, room_key(room, 'presence'), room_key(room, 'states'),
      KEYS[1]) then
      expired = expired + 1
    end
  elseif redis.call('HDEL', room_key(room, 'states'), conn) == 1 then
    publish_presence('state', room, conn, ts, 'null')
    expired = expired + 1
  end
end
return expired
