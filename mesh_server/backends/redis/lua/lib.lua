-- Shared prelude: prepended by scripts.py to every other script before SCRIPT LOAD.
-- Not a script of its own (no KEYS/ARGV). Every script receives the namespace as ARGV[1]
-- and derives the keys it iterates over from it (see backend.py "Key layout").

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

-- Backend clock (PROTOCOL §10.3): milliseconds as a number and as exact decimal text.
local function now_ms()
  local t = redis.call('TIME')
  local ms = math.floor(tonumber(t[2]) / 1000)
  return tonumber(t[1]) * 1000 + ms, t[1] .. string.format('%03d', ms)
end

local function room_key(room, suffix) return NS .. 'room:' .. room .. ':' .. suffix end
local function conn_rooms_key(conn) return NS .. 'conn:' .. conn .. ':rooms' end
local DEADLINES = NS .. 'deadlines'
local ROOMS = NS .. 'rooms'

-- Deadline entries: kind ('p' presence, 's' state) .. #room .. ':' .. room .. conn.
local function entry(kind, room, conn) return kind .. #room .. ':' .. room .. conn end

local function decode_entry(e)
  local colon = string.find(e, ':', 2, true)
  local n = tonumber(string.sub(e, 2, colon - 1))
  return string.sub(e, 1, 1), string.sub(e, colon + 1, colon + n), string.sub(e, colon + n + 1)
end

-- mesh/presence-update payload (PROTOCOL §8); state_json is embedded verbatim.
local function publish_presence(kind, room, conn, ts, state_json)
  local event = '{"type":"' .. kind .. '","connectionId":' .. jstr(conn) .. ',"roomName":'
    .. jstr(room) .. ',"timestamp":' .. ts
  if state_json then event = event .. ',"state":' .. state_json end
  redis.call('PUBLISH', NS .. 'presence:' .. room, event .. '}')
end

-- End presence of conn in room if present: state goes silently, one leave (§10.4, §10.5).
local function end_presence(room, conn, ts)
  if redis.call('SREM', room_key(room, 'presence'), conn) == 0 then return false end
  redis.call('HDEL', room_key(room, 'states'), conn)
  redis.call('ZREM', DEADLINES, entry('p', room, conn), entry('s', room, conn))
  publish_presence('leave', room, conn, ts, nil)
  return true
end

-- Remove conn's membership of room (and the room from the room index once empty).
local function drop_member(room, conn)
  local removed = redis.call('SREM', room_key(room, 'members'), conn)
  if redis.call('SCARD', room_key(room, 'members')) == 0 then redis.call('SREM', ROOMS, room) end
  return removed == 1
end

-- Everything about one connection: presence (leave each), memberships, metadata, routing.
local function remove_connection(conn, extra_rooms)
  local _, ts = now_ms()
  local rooms = redis.call('SMEMBERS', conn_rooms_key(conn))
  for _, room in ipairs(extra_rooms) do table.insert(rooms, room) end
  local seen = {}
  for _, room in ipairs(rooms) do
    if not seen[room] then
      seen[room] = true
      end_presence(room, conn, ts)
      drop_member(room, conn)
    end
  end
  redis.call('DEL', conn_rooms_key(conn))
  redis.call('HDEL', NS .. 'conn-meta', conn)
  local instance = redis.call('HGET', NS .. 'conns', conn)
  redis.call('HDEL', NS .. 'conns', conn)
  if instance then redis.call('SREM', NS .. 'instance:' .. instance .. ':conns', conn) end
end

