-- The live streams of every node: all of them, or those within a radius (geo search).
-- KEYS[1] summaries hash, KEYS[2] expiry zset, KEYS[3] geo set; ARGV[1] "" or lng, ARGV[2] lat,
-- ARGV[3] radius km. Entries past their expiry (a node that stopped publishing) are left out.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids
if ARGV[1] == '' then
  ids = redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')
else
  ids = redis.call('GEOSEARCH', KEYS[3], 'FROMLONLAT', ARGV[1], ARGV[2], 'BYRADIUS', ARGV[3], 'km', 'ASC')
end
local out = {}
for _, id in ipairs(ids) do
  local exp = redis.call('ZSCORE', KEYS[2], id)
  if exp and tonumber(exp) > now then
    local s = redis.call('HGET', KEYS[1], id)
    if s then
      table.insert(out, s)
    end
  end
end
return out
