-- Shared head of every fenced write (prepended to append/snapshot/retire/release): refuses the
-- write unless KEYS[1] (the owner hash) names a current owner holding token ARGV[1].
local owner = redis.call('HMGET', KEYS[1], 'token', 'node')
if owner[1] ~= ARGV[1] or not owner[2] then
  return redis.error_reply('STALE ' .. tostring(owner[1] or '0'))
end
