-- Fenced snapshot. KEYS[1] owner, KEYS[2] snapshot, KEYS[3] journal; ARGV[1] token, ARGV[2]
-- TTL ms, ARGV[3] the snapshot, ARGV[4] how many journal entries (from the head) it contains:
-- those are trimmed in the same step, so no reader sees them twice.
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
local trim = tonumber(ARGV[4])
if trim > 0 then
  redis.call('LTRIM', KEYS[3], trim, -1)
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('LLEN', KEYS[3])
