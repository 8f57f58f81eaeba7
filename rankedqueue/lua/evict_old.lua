-- Evicts the pending items of segments enqueued before a cutoff (the pool's max age); leased ones stay.
-- Returns {evicted, segments looked at, of them still holding a live (leased) row}.
-- Runs after the fragments fn_segment_ids, fn_forget_skips, fn_evict (joined by scripts.py).
-- KEYS: pending, featloc, seg_live, seg_time, seg_width, metadata, rerank_lock, rerank_removed, skips, pool_stats, meta
-- ARGV: cutoff (UNIX s), seg_prefix, skippers_prefix, skipped_by_prefix, offset (old segments to pass over:
--       those still live after an earlier call), most segments to look at
local P = {pending = KEYS[1], featloc = KEYS[2], meta = KEYS[11], seg_live = KEYS[3], seg_time = KEYS[4], seg_width = KEYS[5], seg_prefix = ARGV[2],
           lock = KEYS[7], removed = KEYS[8], metadata = KEYS[6], skips = KEYS[9], skippers_prefix = ARGV[3], skipped_by_prefix = ARGV[4],
           no_compact = true}  -- (it evicts whole segments' pending rows; a compaction would move the rest under it)
local segs = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[1], 'LIMIT', tonumber(ARGV[5]), tonumber(ARGV[6]))
local evicted, still = 0, 0
for _, seq in ipairs(segs) do
  local blob = redis.call('GET', ARGV[2] .. seq .. ':i')
  if blob then
    local ids, out = segment_ids(blob), {}
    local pending, locs = call_concat('ZMSCORE', KEYS[1], ids), call_concat('HMGET', KEYS[2], ids)
    for i, id in ipairs(ids) do
      -- only this segment's own pending row (an id evicted and admitted again has a newer one)
      if pending[i] and locs[i] == seq .. ':' .. (i - 1) then out[#out + 1] = id end
    end
    evict_many(P, out)
    evicted = evicted + #out
  end
  if redis.call('HEXISTS', KEYS[3], seq) == 1 then still = still + 1 end
end
if evicted > 0 then redis.call('HINCRBY', KEYS[10], 'age_evicted', evicted) end
return {evicted, #segs, still}
