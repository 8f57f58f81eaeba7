-- Fragment: defines evict() and lowest_pending() of the capped pool (runs after fn_segment_ids, fn_kill_row and fn_forget_skips).
-- evict() takes a pending item out to make room: its row dies as with kill_row(), but its featloc
-- entry is deleted, not left as a tombstone, so the same id sent again later is decided afresh;
-- its metadata and skip records go with it (nothing of it stays behind).
-- P: a table of key names: pending, featloc, meta, seg_live, seg_time, seg_width, seg_prefix, lock, removed,
--    metadata, skips, skippers_prefix, skipped_by_prefix; no_compact = true leaves segments as they are.
-- Once at most seven eighths of a segment's rows (of 4 or more) live, they are copied into a new
-- segment and the old one is freed, so the rows of evicted items hold at most a seventh more memory
-- than the live ones (each eviction copies at most 7 rows, amortized).
local function compact(P, seq)
  local live = tonumber(redis.call('HGET', P.seg_live, seq) or '0')
  local blob = redis.call('GET', P.seg_prefix .. seq .. ':i')
  if live == 0 or not blob then return end
  local all = segment_ids(blob)
  local n = #all
  if n < 4 or live * 8 > n * 7 then return end
  local rb = tonumber(redis.call('HGET', P.seg_width, seq))
  local rows = redis.call('GET', P.seg_prefix .. seq .. ':f')
  local dead = redis.call('GET', P.seg_prefix .. seq .. ':d') or ''
  local new = redis.call('HINCRBY', P.meta, 'segseq', 1)
  local parts, lens, ids, k = {}, {}, {}, 0
  for i, id in ipairs(all) do
    local r = i - 1
    local byte = string.byte(dead, math.floor(r / 8) + 1) or 0
    if math.floor(byte / 2 ^ (7 - r % 8)) % 2 == 0 then  -- (SETBIT 0 is the first byte's MSB)
      k = k + 1
      parts[k] = string.sub(rows, r * rb + 1, (r + 1) * rb)
      lens[k] = struct.pack('<H', #id)
      ids[k] = id
      redis.call('HSET', P.featloc, id, new .. ':' .. (k - 1))
    end
  end
  local t = redis.call('TIME')
  local p = P.seg_prefix
  redis.call('SET', p .. new .. ':f', table.concat(parts))
  redis.call('SET', p .. new .. ':i', struct.pack('<I4', k) .. table.concat(lens) .. table.concat(ids))
  redis.call('SET', p .. new .. ':t', t[1] .. '.' .. t[2])
  redis.call('HSET', P.seg_live, new, k)
  redis.call('HSET', P.seg_width, new, rb)
  redis.call('ZADD', P.seg_time, redis.call('ZSCORE', P.seg_time, seq), new)  -- (its items keep their age)
  redis.call('DEL', p .. seq .. ':f', p .. seq .. ':i', p .. seq .. ':d', p .. seq .. ':t')
  redis.call('HDEL', P.seg_live, seq)
  redis.call('HDEL', P.seg_width, seq)
  redis.call('ZREM', P.seg_time, seq)
end

local function evict(P, id)
  local loc = redis.call('HGET', P.featloc, id)
  redis.call('ZREM', P.pending, id)
  kill_row(P.featloc, P.seg_live, P.seg_time, P.seg_width, P.seg_prefix, P.lock, P.removed, id)
  redis.call('HDEL', P.featloc, id)
  redis.call('HDEL', P.metadata, id)
  forget_skips(P.skips, P.skippers_prefix, P.skipped_by_prefix, id)
  if loc and loc ~= '' and not P.no_compact then compact(P, string.sub(loc, 1, string.find(loc, ':', 1, true) - 1)) end
end

-- The lowest pending item: id, score (nil when none is pending).
local function lowest_pending(P)
  local low = redis.call('ZRANGE', P.pending, 0, 0, 'WITHSCORES')
  if low[1] then return low[1], tonumber(low[2]) end
  return nil, nil
end
