-- Take ownership of one session, compare-and-set on its fencing token.
-- KEYS[1] owner hash {node, token}; ARGV[1] node id, ARGV[2] the token the caller saw ("0" when
-- none), ARGV[3] TTL in ms.
-- Returns {1, node, token} when taken, {0, owner node or "", current token} when someone else
-- moved first. A new token is above the old one and above Redis's clock in ms, so a token can
-- never be handed out twice, even after the owner record expired.
local cur = tonumber(redis.call('HGET', KEYS[1], 'token') or '0')
if cur ~= tonumber(ARGV[2]) then
  return {0, redis.call('HGET', KEYS[1], 'node') or '', tostring(cur)}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token = math.max(cur + 1, now_ms)
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'token', string.format('%d', token))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, ARGV[1], string.format('%d', token)}
