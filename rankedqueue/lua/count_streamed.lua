-- Counts what a scorer's batches brought to the pool, before their offsets commit, and records how far
-- each partition was counted: a record read again after a crash or a rolled-back commit (at or below
-- its partition's mark) is then left out of the counts by the scorer, so each record counts once.
-- A partition whose mark is past what this scorer expects was counted by another scorer meanwhile (it
-- moved in a rebalance, and that one read the records again): nothing is counted, 0 is returned, and the
-- scorer reads again from its committed offsets.
-- KEYS: pool_stats, pool_offsets
-- ARGV: streamed, rejected, read, then triples of (topic:partition, the mark it expects (-1: none), the highest offset counted)
for j = 4, #ARGV - 2, 3 do
  if tonumber(redis.call('HGET', KEYS[2], ARGV[j]) or '-1') > tonumber(ARGV[j + 1]) then return 0 end
end
redis.call('HINCRBY', KEYS[1], 'streamed', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'rejected', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'read', ARGV[3])
for j = 4, #ARGV - 2, 3 do
  if tonumber(ARGV[j + 2]) > tonumber(redis.call('HGET', KEYS[2], ARGV[j]) or '-1') then redis.call('HSET', KEYS[2], ARGV[j], ARGV[j + 2]) end
end
return 1
