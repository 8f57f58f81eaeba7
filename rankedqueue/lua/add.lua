-- Enqueues one batch as one segment, through the capped pool and the random reservoir.
-- Ids already known (pending, leased, labeled, dropped) change nothing in the pool. With a capacity, a
-- full pool takes a new item only if it outranks the lowest pending item, which is evicted (evict()).
-- Independently, an item enters the reservoir (bounded by its size) if its sampling key is among the
-- smallest seen: its score, row and metadata are kept there, the member with the largest key leaves.
-- Returns {added, evicted, rejected, pool threshold ('' if not full), reservoir threshold ('' if not full),
--          reservoir members replaced}.
-- Runs after the fragments fn_kill_row, fn_forget_skips, fn_evict (joined by scripts.py).
-- KEYS: pending, featloc, meta, seg_live, seg_time, seg_width, metadata, rerank_lock, rerank_removed, skips,
--       reservoir, reservoir_rows, pool_stats
-- ARGV: now ('': Redis's time), seg_prefix, row_bytes, n, rows (n * row_bytes), has_metadata ('0'/'1'), dtype,
--       ids blob (uint32 n, n uint16 lengths, the ids), scores (n little-endian doubles),
--       capacity (-1: none), reservoir size (0: none), sampling keys (n little-endian doubles, '' without a reservoir),
--       skippers_prefix, skipped_by_prefix, then n ids, then (if has_metadata) n JSON objects or ''
local now, prefix, rb, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local rows, has_md, scores = ARGV[5], ARGV[6] == '1', ARGV[9]
local cap, R, ukeys = tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12]
local P = {pending = KEYS[1], featloc = KEYS[2], meta = KEYS[3], seg_live = KEYS[4], seg_time = KEYS[5], seg_width = KEYS[6], seg_prefix = prefix,
           lock = KEYS[8], removed = KEYS[9], metadata = KEYS[7], skips = KEYS[10], skippers_prefix = ARGV[13], skipped_by_prefix = ARGV[14]}
local dtype = redis.call('HGET', KEYS[3], 'feature_dtype')
if not dtype then
  redis.call('HSET', KEYS[3], 'feature_dtype', ARGV[7])
elseif dtype ~= ARGV[7] then
  return redis.error_reply('queue stores features as ' .. dtype .. ', not ' .. ARGV[7])
end
local first_id = 15
local function md_of(i)
  if not has_md then return '' end
  return ARGV[first_id + n + i - 1]
end
local evicted, rejected, replaced = 0, 0, 0
-- Leases handed back may have left more than the capacity pending: the lowest go first.
if cap >= 0 then
  while redis.call('ZCARD', KEYS[1]) > cap do
    evict(P, (lowest_pending(P)))
    evicted = evicted + 1
  end
end
-- Decide: the first time an id comes (a duplicate within the batch too) it is admitted or not; an item
-- admitted by this call and evicted again by a later one of it is only taken out of the pending set.
local seen, is_new, order = {}, {}, {}
for i = 1, n do
  local id = ARGV[first_id + i - 1]
  if not seen[id] then
    seen[id] = true
    local s = struct.unpack('<d', scores, 8 * i - 7)
    if R > 0 and redis.call('ZSCORE', KEYS[11], id) == false then
      local u = struct.unpack('<d', ukeys, 8 * i - 7)
      local full = redis.call('ZCARD', KEYS[11]) >= R
      if not full or u < tonumber(redis.call('ZRANGE', KEYS[11], -1, -1, 'WITHSCORES')[2]) then
        redis.call('ZADD', KEYS[11], u, id)
        redis.call('HSET', KEYS[12], id, struct.pack('<dI4', s, rb) .. string.sub(rows, (i - 1) * rb + 1, i * rb) .. md_of(i))
        if full then
          redis.call('HDEL', KEYS[12], redis.call('ZPOPMAX', KEYS[11])[1])
          replaced = replaced + 1
        end
      end
    end
    if redis.call('HEXISTS', KEYS[2], id) == 0 then
      local ok = cap < 0 or redis.call('ZCARD', KEYS[1]) < cap
      if not ok then
        local low, low_s = lowest_pending(P)
        if low and s > low_s then
          if is_new[low] then  -- (it did not enter after all: counted as rejected)
            redis.call('ZREM', KEYS[1], low)
            is_new[low] = nil
            rejected = rejected + 1
          else
            evict(P, low)
            evicted = evicted + 1
          end
          ok = true
        end
      end
      if ok then
        redis.call('ZADD', KEYS[1], s, id)
        is_new[id] = i
        order[#order + 1] = id
      else
        rejected = rejected + 1
      end
    end
  end
end
-- Write the rows of what was admitted and stayed, as one segment.
local added, parts, lens, ids = 0, {}, {}, {}
local seq = nil
for _, id in ipairs(order) do
  local i = is_new[id]
  if i then
    if not seq then seq = redis.call('HINCRBY', KEYS[3], 'segseq', 1) end
    redis.call('HSET', KEYS[2], id, seq .. ':' .. added)
    added = added + 1
    parts[added] = string.sub(rows, (i - 1) * rb + 1, i * rb)
    lens[added] = struct.pack('<H', #id)
    ids[added] = id
    local md = md_of(i)
    if md ~= '' then redis.call('HSET', KEYS[7], id, md) end
  end
end
if evicted > 0 then redis.call('HINCRBY', KEYS[13], 'evicted', evicted) end
if replaced > 0 then redis.call('HINCRBY', KEYS[13], 'reservoir_replaced', replaced) end
if added > 0 then
  redis.call('SET', prefix .. seq .. ':f', table.concat(parts))
  redis.call('SET', prefix .. seq .. ':i', struct.pack('<I4', added) .. table.concat(lens) .. table.concat(ids))
  redis.call('HSET', KEYS[4], seq, added)
  redis.call('HSET', KEYS[6], seq, rb)
  local t = redis.call('TIME')
  redis.call('SET', prefix .. seq .. ':t', t[1] .. '.' .. t[2])
  if now == '' then now = tonumber(t[1]) + tonumber(t[2]) / 1e6 end  -- (the queue's clock: Redis's)
  redis.call('ZADD', KEYS[5], now, seq)
end
local pool_thr, res_thr = '', ''
if cap >= 0 and redis.call('ZCARD', KEYS[1]) >= cap then
  local low = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')  -- (as Redis prints it: exact, unlike tostring)
  pool_thr = low[2] or 'inf'
end
if R > 0 and redis.call('ZCARD', KEYS[11]) >= R then res_thr = redis.call('ZRANGE', KEYS[11], -1, -1, 'WITHSCORES')[2] end
return {added, evicted, rejected, pool_thr, res_thr, replaced}
