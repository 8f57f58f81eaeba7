-- Fragment: defines evict() and lowest_pending() of the capped pool (runs after fn_kill_row and fn_forget_skips).
-- evict() takes a pending item out to make room: its row dies as with kill_row(), but its featloc
-- entry is deleted, not left as a tombstone, so the same id sent again later is decided afresh;
-- its metadata and skip records go with it (nothing of it stays behind).
-- P: a table of key names: pending, featloc, seg_live, seg_time, seg_width, seg_prefix, lock, removed,
--    metadata, skips, skippers_prefix, skipped_by_prefix.
local function evict(P, id)
  redis.call('ZREM', P.pending, id)
  kill_row(P.featloc, P.seg_live, P.seg_time, P.seg_width, P.seg_prefix, P.lock, P.removed, id)
  redis.call('HDEL', P.featloc, id)
  redis.call('HDEL', P.metadata, id)
  forget_skips(P.skips, P.skippers_prefix, P.skipped_by_prefix, id)
end

-- The lowest pending item: id, score (nil when none is pending).
local function lowest_pending(P)
  local low = redis.call('ZRANGE', P.pending, 0, 0, 'WITHSCORES')
  if low[1] then return low[1], tonumber(low[2]) end
  return nil, nil
end
