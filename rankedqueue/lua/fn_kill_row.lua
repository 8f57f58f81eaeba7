-- Fragment: defines kill_row(), which marks an item gone for good (labeled or dropped): its row
-- dies, its segment is freed with the last live row, its featloc entry becomes a tombstone so it
-- is never enqueued again, and a running bulk re-rank is told to leave it out.
-- Arguments: featloc, seg_live, seg_time, seg_width, seg_prefix, rerank_lock, rerank_removed, item id.
local function kill_row(featloc, seg_live, seg_time, seg_width, seg_prefix, lock, removed, id)
  local loc = redis.call('HGET', featloc, id)
  if loc and loc ~= '' then
    local sep = string.find(loc, ':', 1, true)
    local seq = string.sub(loc, 1, sep - 1)
    local row = tonumber(string.sub(loc, sep + 1))
    if redis.call('HINCRBY', seg_live, seq, -1) <= 0 then
      redis.call('DEL', seg_prefix .. seq .. ':f', seg_prefix .. seq .. ':i', seg_prefix .. seq .. ':d', seg_prefix .. seq .. ':t')
      redis.call('HDEL', seg_live, seq)
      redis.call('HDEL', seg_width, seq)
      redis.call('ZREM', seg_time, seq)
    else
      redis.call('SETBIT', seg_prefix .. seq .. ':d', row, 1)
    end
  end
  redis.call('HSET', featloc, id, '')
  if redis.call('EXISTS', lock) == 1 then redis.call('SADD', removed, id) end
end
