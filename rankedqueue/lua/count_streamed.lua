-- Counts what a scorer's batches brought to the pool, before their offsets commit, and records how far
-- each partition was counted: a record read again after a crash or a rolled-back commit (at or below
-- its partition's mark) is then left out of the counts by the scorer, so each record counts once.
-- KEYS: pool_stats, pool_offsets
-- ARGV: streamed, rejected, then pairs of (topic:partition, highest offset counted)
redis.call('HINCRBY', KEYS[1], 'streamed', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'rejected', ARGV[2])
for j = 3, #ARGV - 1, 2 do
  local at = tonumber(redis.call('HGET', KEYS[2], ARGV[j]) or '-1')
  if tonumber(ARGV[j + 1]) > at then redis.call('HSET', KEYS[2], ARGV[j], ARGV[j + 1]) end
end
return 1
