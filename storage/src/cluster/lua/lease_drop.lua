-- End a node lease (clean shutdown). KEYS[1] lease hash, KEYS[2] index; ARGV[1] node id,
-- ARGV[2] nonce. Only the process holding it may drop it.
if redis.call('HGET', KEYS[1], 'nonce') == ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
