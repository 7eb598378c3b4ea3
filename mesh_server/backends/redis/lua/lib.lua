-- Shared prelude: prepended by scripts.py to every other script before SCRIPT LOAD.
-- Not a script of its own (no KEYS/ARGV). Every script receives the namespace as ARGV[1]
-- (for channel names and the few dynamic keys below); every other key it touches is declared
-- in its KEYS. Helpers take the keys they touch as arguments.

local NS = ARGV[1]

local ESCAPES = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
                  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }

-- JSON string literal exactly as orjson writes it (no "\/" escape, unlike cjson; raw UTF-8).
local function jstr(s)
  local escaped = string.gsub(s, '[%z\1-\31"\\]', function(c)
    return ESCAPES[c] or string.format('\\u%04x', string.byte(c))
  end)
  return '"' .. escaped .. '"'
end

-- Backend clock (protocol.md §10.3): milliseconds as a number and as exact decimal text.
local function now_ms()
  local t = redis.call('TIME')
  local ms = math.floor(tonumber(t[2]) / 1000)
  return tonumber(t[1]) * 1000 + ms, t[1] .. string.format('%03d', ms)
end

-- Per-room and per-connection keys, derived here only by the scripts whose header says so:
-- those that visit rooms or connections found in the store (a connection's rooms, due
-- deadline entries, a room's members), which the caller cannot know to declare in KEYS.
local function room_key(room, suffix) return NS .. 'room:' .. room .. ':' .. suffix end
local function conn_rooms_key(conn) return NS .. 'conn:' .. conn .. ':rooms' end

-- Deadline entries: kind ('p' presence, 's' state) .. #room .. ':' .. room .. conn.
local function entry(kind, room, conn) return kind .. #room .. ':' .. room .. conn end

local function decode_entry(e)
  local colon = string.find(e, ':', 2, true)
  local n = tonumber(string.sub(e, 2, colon - 1))
  return string.sub(e, 1, 1), string.sub(e, colon + 1, colon + n), string.sub(e, colon + n + 1)
end

-- mesh/presence-update payload (protocol.md §8); state_json is embedded verbatim.
local function publish_presence(kind, room, conn, ts, state_json)
  local event = '{"type":"' .. kind .. '","connectionId":' .. jstr(conn) .. ',"roomName":'
    .. jstr(room) .. ',"timestamp":' .. ts
  if state_json then event = event .. ',"state":' .. state_json end
  redis.call('PUBLISH', NS .. 'presence:' .. room, event .. '}')
end

-- End presence of conn in room if present: state goes silently, one leave (§10.4, §10.5).
local function end_presence(room, conn, ts, presence_key, states_key, deadlines_key)
  if redis.call('SREM', presence_key, conn) == 0 then return false end
  redis.call('HDEL', states_key, conn)
  redis.call('ZREM', deadlines_key, entry('p', room, conn), entry('s', room, conn))
  publish_presence('leave', room, conn, ts, nil)
  return true
end

-- Remove conn's membership of room (and the room from the room index once empty).
local function drop_member(room, conn, members_key, rooms_key)
  local removed = redis.call('SREM', members_key, conn)
  if redis.call('SCARD', members_key) == 0 then redis.call('SREM', rooms_key, room) end
  return removed == 1
end

-- Everything about one connection: presence (leave each), memberships, metadata, routing.
-- k = {deadlines, rooms, conn_meta, conns, instance_conns} (declared by the caller); the
-- connection's rooms set and the keys of each of its rooms are dynamic.
local function remove_connection(conn, extra_rooms, k)
  local _, ts = now_ms()
  local rooms = redis.call('SMEMBERS', conn_rooms_key(conn))
  for _, room in ipairs(extra_rooms) do table.insert(rooms, room) end
  local seen = {}
  for _, room in ipairs(rooms) do
    if not seen[room] then
      seen[room] = true
      end_presence(room, conn, ts, room_key(room, 'presence'), room_key(room, 'states'),
        k.deadlines)
      drop_member(room, conn, room_key(room, 'members'), k.rooms)
    end
  end
  redis.call('DEL', conn_rooms_key(conn))
  redis.call('HDEL', k.conn_meta, conn)
  redis.call('HDEL', k.conns, conn)
  redis.call('SREM', k.instance_conns, conn)
end
