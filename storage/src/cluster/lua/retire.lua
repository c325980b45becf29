-- Fenced retire: the session is over. KEYS[1] owner, KEYS[2] snapshot, KEYS[3] journal;
-- ARGV[1] token, ARGV[2] TTL ms. Deletes the data and releases ownership; the token stays (with
-- the TTL) so that no later owner is handed an old one.
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[1], 'node')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
