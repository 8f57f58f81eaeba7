-- Enqueues one batch through the capped pool and the random reservoir; its admitted rows go to a segment (fn_segment_write).
-- Ids already known (pending, leased, labeled, dropped) change nothing in the pool. With a capacity, a
-- full pool takes a new item only if it outranks the lowest pending item, which is evicted (evict_many()).
-- Independently, an item enters the reservoir (bounded by its size) if its sampling key is among the
-- smallest seen: its score, row and metadata are kept there, the member with the largest key leaves.
-- Both are decided for the whole batch at once (one command per key, not one per item): the outcome is
-- what taking its items one at a time would give, but for ties and the order of what a batch pushes out.
-- Audit items (in the audit hash) are never evicted for their rank: they wait for a labeler's answer (at most
-- AUDIT_MAX_WAITING of them: rankedqueue.auto_accept), and the pool's threshold is its lowest other item.
-- Returns {added, evicted, rejected, pool threshold ('' if not full), reservoir threshold ('' if not full),
--          reservoir members replaced}.
-- Runs after the fragments fn_segment_ids, fn_forget_skips, fn_evict, fn_segment_write (joined by scripts.py).
-- KEYS: pending, featloc, meta, seg_live, seg_time, seg_width, metadata, rerank_lock, rerank_removed, skips,
--       reservoir, reservoir_rows, pool_stats, audit
-- ARGV: now ('': Redis's time), seg_prefix, row_bytes, n, rows (n * row_bytes), has_metadata ('0'/'1'), dtype,
--       ids blob (uint32 n, n uint16 lengths, the ids), scores (n little-endian doubles),
--       capacity (-1: none), reservoir size (0: none), sampling keys (n little-endian doubles, '' without a reservoir),
--       skippers_prefix, skipped_by_prefix, rows a segment grows to by appends and merges (0: one segment per call),
--       seconds an open segment takes appends for, segments looked at for merging (0: none), then n ids, then (if
--       has_metadata) n JSON objects or ''
-- Admitted rows are appended to the newest segment while it is open (see fn_segment_write); no segment grows nor merges
-- while a bulk re-rank runs (rerank_swap.lua takes the rows of segments newer than its snapshot).
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
local grow, window, look = tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[17])
local first_id = 18
local function md_of(i)
  if not has_md then return '' end
  return ARGV[first_id + n + i - 1]
end
local evicted, rejected, replaced = 0, 0, 0
-- The k lowest pending items that are no audit items, as ZRANGE WITHSCORES gives them (fewer if there are not k).
local function lowest_evictable(k)
  local out, start, page = {}, 0, math.max(k, 256)  -- (pages of 256 at least: the audit items, at score 0, come first)
  while k > 0 and #out < 2 * k do
    local got = redis.call('ZRANGE', KEYS[1], start, start + page - 1, 'WITHSCORES')
    if #got == 0 then break end
    local ids = {}
    for j = 1, #got, 2 do ids[#ids + 1] = got[j] end
    local audit = call_concat('HMGET', KEYS[14], ids)
    for j, id in ipairs(ids) do
      if not audit[j] and #out < 2 * k then
        out[#out + 1] = id
        out[#out + 1] = got[2 * j]
      end
    end
    start = start + page
  end
  return out
end
local depth = cap >= 0 and redis.call('ZCARD', KEYS[1]) or 0
-- Leases handed back (or audit items, which enter past the cap) may have left more than the capacity pending: the
-- lowest others go first.
if depth > cap and cap >= 0 then
  local lows, out = lowest_evictable(depth - cap), {}
  for j = 1, #lows, 2 do out[#out + 1] = lows[j] end
  evict_many(P, out)
  evicted, depth = #out, depth - #out
end
-- The first time an id comes in this batch counts (a duplicate within it changes nothing).
local seen, cand, cids = {}, {}, {}
for i = 1, n do
  local id = ARGV[first_id + i - 1]
  if not seen[id] then
    seen[id] = true
    cand[#cand + 1] = i
    cids[#cids + 1] = id
  end
end
local function score(i) return (struct.unpack('<d', scores, 8 * i - 7)) end
-- The reservoir keeps the R smallest sampling keys of all it was offered: of its members and this
-- batch's new ids, the largest keys beyond R leave (on a tie, the newcomer), whatever the order.
if R > 0 and #cids > 0 then
  local member = call_concat('ZMSCORE', KEYS[11], cids)
  local size = redis.call('ZCARD', KEYS[11])
  local top = size >= R and tonumber(redis.call('ZRANGE', KEYS[11], -1, -1, 'WITHSCORES')[2]) or math.huge
  local new = {}
  for k, i in ipairs(cand) do
    if not member[k] then
      local u = struct.unpack('<d', ukeys, 8 * i - 7)
      if u < top then new[#new + 1] = {u, i} end
    end
  end
  local excess = size + #new - R
  if excess > 0 and #new > 0 then
    table.sort(new, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
    local k = math.min(size, excess)
    local olds = k > 0 and redis.call('ZRANGE', KEYS[11], -k, -1, 'WITHSCORES') or {}  -- (ascending)
    local a, b, out = #olds / 2, #new, {}
    for _ = 1, math.min(excess, a + b) do
      if b >= 1 and (a < 1 or new[b][1] >= tonumber(olds[2 * a])) then
        b = b - 1
      else
        out[#out + 1] = olds[2 * a - 1]
        a = a - 1
      end
    end
    for j = #new, b + 1, -1 do new[j] = nil end
    call_chunks('ZREM', KEYS[11], out)
    call_chunks('HDEL', KEYS[12], out)
    replaced = #out
  end
  local zargs, rows_ = {}, {}
  for j, e in ipairs(new) do
    local i, id = e[2], ARGV[first_id + e[2] - 1]
    zargs[2 * j - 1], zargs[2 * j] = e[1], id
    rows_[2 * j - 1], rows_[2 * j] = id, struct.pack('<dI4', score(i), rb) .. string.sub(rows, (i - 1) * rb + 1, i * rb) .. md_of(i)
  end
  call_chunks('ZADD', KEYS[11], zargs)
  call_chunks('HSET', KEYS[12], rows_)
end
-- The pool: ids it has never taken (or has forgotten) are new. Without a cap all enter; with one,
-- the pool keeps the `cap` best of its pending items and the new ones (an equal score does not
-- outrank a pending item), whatever their order: the best new ones fill what room there is, the
-- rest, best first, each push out the lowest pending item left while they outrank it.
local locs = #cids > 0 and call_concat('HMGET', KEYS[2], cids) or {}
local new = {}
for k, i in ipairs(cand) do
  if not locs[k] then new[#new + 1] = {score(i), i} end
end
local enter = #new
if cap >= 0 and #new > cap - depth then
  table.sort(new, function(a, b) return a[1] > b[1] or (a[1] == b[1] and a[2] < b[2]) end)
  local free = math.max(0, cap - depth)
  local m = #new - free  -- those that must outrank a pending item
  local lows = lowest_evictable(math.min(m, depth))
  local k = #lows / 2
  local j, out = 0, {}
  while j < k and new[free + j + 1][1] > tonumber(lows[2 * j + 2]) do
    j = j + 1
    out[j] = lows[2 * j - 1]
  end
  evict_many(P, out)
  evicted = evicted + j
  rejected = rejected + m - j
  enter = free + j
end
local is_new, order, zargs = {}, {}, {}
for j = 1, enter do is_new[new[j][2]] = true end
for _, i in ipairs(cand) do  -- (in arrival order: the segment's rows)
  if is_new[i] then
    order[#order + 1] = i
    zargs[2 * #order - 1], zargs[2 * #order] = score(i), ARGV[first_id + i - 1]
  end
end
call_chunks('ZADD', KEYS[1], zargs)
-- Write the rows of what was admitted: appended to the newest segment while it is open, else as a new one.
local added, W, mds = #order, {parts = {}, lens = {}, ids = {}}, {}
for r, i in ipairs(order) do
  local id = ARGV[first_id + i - 1]
  W.parts[r] = string.sub(rows, (i - 1) * rb + 1, i * rb)
  W.lens[r] = struct.pack('<H', #id)
  W.ids[r] = id
  local md = md_of(i)
  if md ~= '' then
    mds[#mds + 1] = id
    mds[#mds + 1] = md
  end
end
call_chunks('HSET', KEYS[7], mds)
if evicted > 0 then redis.call('HINCRBY', KEYS[13], 'evicted', evicted) end
if replaced > 0 then redis.call('HINCRBY', KEYS[13], 'reservoir_replaced', replaced) end
local growing = grow > 0 and redis.call('EXISTS', P.lock) == 0
local t = redis.call('TIME')
local stamp = t[1] .. '.' .. t[2]
if now == '' then now = tonumber(t[1]) + tonumber(t[2]) / 1e6 end  -- (the queue's clock: Redis's)
local last = redis.call('HGET', KEYS[3], 'segseq')
if added > 0 then
  local into, n = nil, nil
  -- (only a small call appends: an eighth of a segment or more makes one of its own, stored best first, which keeps
  -- compaction cheap: the evicted rows are its last ones)
  if growing and added * 8 < grow then into, n = open_segment(P, last, added, rb, now, grow, window, false) end
  last = tostring(write_rows(P, W, rb, now, stamp, into, n))
end
-- Merges only while the segments hold fewer than an eighth of a segment's rows on average: that bounds their count by
-- the pending items, and a pool whose segments are full enough pays no sweep.
if growing and look > 0 and redis.call('HLEN', KEYS[6]) * grow > 8 * redis.call('ZCARD', KEYS[1]) then
  merge_sparse(P, rb, stamp, grow, look, last, now)
end
local pool_thr, res_thr = '', ''
if cap >= 0 and redis.call('ZCARD', KEYS[1]) >= cap then
  local low = lowest_evictable(1)  -- (as Redis prints it: exact, unlike tostring)
  pool_thr = low[2] or 'inf'
end
if R > 0 and redis.call('ZCARD', KEYS[11]) >= R then res_thr = redis.call('ZRANGE', KEYS[11], -1, -1, 'WITHSCORES')[2] end
return {added, evicted, rejected, pool_thr, res_thr, replaced}
