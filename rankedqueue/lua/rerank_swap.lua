-- Ends a bulk re-rank: reconciles the RESTOREd ranking with what changed meanwhile and swaps it in.
-- Returns the pending count after the swap, or -1 if the lock was lost. Runs after the fragment fn_segment_ids.
-- KEYS: rerank_lock, tmp, pending, leased, rerank_removed, seg_width, meta, old, last_score, labeled
-- ARGV: token, segseq at the snapshot, seg_prefix, version ('' for none)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then redis.call('DEL', KEYS[2]); return -1 end
-- Leased: out, but an expired or skipped lease hands the item back at the new model's score.
for _, id in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  local s = redis.call('ZSCORE', KEYS[2], id)
  if s then
    redis.call('HSET', KEYS[9], id, s)
    redis.call('ZREM', KEYS[2], id)
  end
end
-- Labeled or dropped since the snapshot: out.
for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do redis.call('ZREM', KEYS[2], id) end
-- Enqueued since the snapshot (segments it did not see): in, at the score they have now.
local snap, late = tonumber(ARGV[2]), 0
for _, seq in ipairs(redis.call('HKEYS', KEYS[6])) do
  if tonumber(seq) > snap then
    local blob = redis.call('GET', ARGV[3] .. seq .. ':i')
    if blob then
      for _, id in ipairs(segment_ids(blob)) do
        local s = redis.call('ZSCORE', KEYS[3], id)
        if s then
          redis.call('ZADD', KEYS[2], s, id)
          late = late + 1
        end
      end
    end
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('RENAME', KEYS[3], KEYS[8])
    redis.call('UNLINK', KEYS[8])  -- the old queue is freed in the background
  end
  redis.call('RENAME', KEYS[2], KEYS[3])
  redis.call('PERSIST', KEYS[3])
else
  redis.call('UNLINK', KEYS[3])
end
if ARGV[4] ~= '' then
  -- The first ranking ends the cold start: the labels so far are its (curriculum counts from here).
  redis.call('HSETNX', KEYS[7], 'cold_start_labels', redis.call('SCARD', KEYS[10]))
  redis.call('HSET', KEYS[7], 'ranked_version', ARGV[4])
end
redis.call('DEL', KEYS[1], KEYS[5])
return redis.call('ZCARD', KEYS[3])
