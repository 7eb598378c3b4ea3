-- publish_channel: append to history, keep exactly the N most recent, publish (protocol.md §9.5).
-- KEYS[1] = {ns}history:{channel} (list, newest first)
-- ARGV[1] = namespace, ARGV[2] = channel (verbatim), ARGV[3] = message, ARGV[4] = N (> 0)
redis.call('LPUSH', KEYS[1], ARGV[3])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[4]) - 1)
return redis.call('PUBLISH', ARGV[2], ARGV[3])
