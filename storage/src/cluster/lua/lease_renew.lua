-- Start or renew a node lease. KEYS[1] the node's lease hash, KEYS[2] the index of nodes (a
-- sorted set by lease expiry, in the same hash slot); ARGV[1] node id, ARGV[2] this process's
-- nonce, ARGV[3] TTL ms, ARGV[4] sessions held, ARGV[5] CPU use in per mille, ARGV[6] accepts
-- new sessions ("1"/"0"). Refuses ("TAKEN") when another live process holds the same node id.
local held = redis.call('HGET', KEYS[1], 'nonce')
if held and held ~= ARGV[2] then
  return redis.error_reply('TAKEN ' .. ARGV[1])
end
redis.call('HSET', KEYS[1], 'nonce', ARGV[2], 'sessions', ARGV[4], 'cpu', ARGV[5], 'open', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
return 1
