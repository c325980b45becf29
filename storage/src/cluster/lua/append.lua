-- Fenced journal append. KEYS[1] owner, KEYS[2] journal list; ARGV[1] token, ARGV[2] TTL ms,
-- ARGV[3..] entries in order. Returns the journal's length.
redis.call('RPUSH', KEYS[2], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('LLEN', KEYS[2])
