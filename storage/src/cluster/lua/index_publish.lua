-- Publish this node's live streams into the shared discovery index, and forget expired ones.
-- KEYS[1] summaries hash, KEYS[2] expiry zset, KEYS[3] geo set (one hash tag, {streams}).
-- ARGV[1] TTL ms, ARGV[2] how many entries follow, then per entry: id, summary JSON, lng, lat
-- ("" when it has no location); then the ids this node listed before and no longer runs.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local i = 3
for _ = 1, n do
  local id, summary, lng, lat = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  redis.call('HSET', KEYS[1], id, summary)
  redis.call('ZADD', KEYS[2], now + ttl, id)
  if lng ~= '' then
    redis.call('GEOADD', KEYS[3], lng, lat, id)
  else
    redis.call('ZREM', KEYS[3], id)
  end
  i = i + 4
end
while i <= #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
  redis.call('ZREM', KEYS[3], ARGV[i])
  i = i + 1
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(gone) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
return #gone
