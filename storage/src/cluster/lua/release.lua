-- Fenced release (a drain hands the session over): KEYS[1] owner; ARGV[1] token. The data
-- stays for the next owner; the token stays so the next one is higher.
redis.call('HDEL', KEYS[1], 'node')
return 1
