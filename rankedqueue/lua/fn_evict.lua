-- Fragment: defines call_chunks(), call_concat(), segment_rows(), row_dead() and evict_many() of the capped pool (runs after
-- fn_segment_ids and fn_forget_skips).
-- evict_many() takes pending items out to make room: their rows die (as with kill_row()), their featloc
-- entries are deleted, not left as tombstones, so the same ids sent again later are decided afresh;
-- their metadata and skip records go with them (nothing of them stays behind). It works a batch at
-- a time: one command per key (per segment for the rows), not one per item, which is what a full
-- pool pays for each item it admits.
-- P: a table of key names: pending, featloc, meta, seg_live, seg_time, seg_width, seg_prefix, lock, removed,
--    metadata, skips, skippers_prefix, skipped_by_prefix; no_compact = true leaves segments as they are.
-- Once at most seven eighths of a segment's rows (of 4 or more) live, the segment is compacted in
-- place (compact()), so the rows of evicted items hold at most a seventh more memory than the live ones.

local CALL_CHUNK = 1000  -- arguments per command (Lua's unpack() has a limit; even, for field-value pairs)

-- Runs cmd key list... in chunks of CALL_CHUNK list elements (for commands taking many members or pairs).
local function call_chunks(cmd, key, list)
  for lo = 1, #list, CALL_CHUNK do
    redis.call(cmd, key, unpack(list, lo, math.min(#list, lo + CALL_CHUNK - 1)))
  end
end

-- Like call_chunks() for commands answering one value per member (HMGET, ZMSCORE): the replies, concatenated.
local function call_concat(cmd, key, list)
  local out = {}
  for lo = 1, #list, CALL_CHUNK do
    for _, v in ipairs(redis.call(cmd, key, unpack(list, lo, math.min(#list, lo + CALL_CHUNK - 1)))) do out[#out + 1] = v end
  end
  return out
end

local ROW_NAMES = {}  -- row number -> its decimal string, made once per script call (number formatting is slow in Lua)
local function row_name(k)
  local s = ROW_NAMES[k]
  if not s then
    s = tostring(k)
    ROW_NAMES[k] = s
  end
  return s
end

-- Rows segment seq holds, live or dead (its index blob's count), or nil if it is gone.
local function segment_rows(P, seq)
  local head = redis.call('GETRANGE', P.seg_prefix .. seq .. ':i', 0, 3)
  if #head < 4 then return nil end
  return (struct.unpack('<I4', head))
end

-- Whether row r (from 0) is marked in a segment's dead-row bitmap (its ':d' string, '' for none).
local function row_dead(dead, r)
  local b = string.byte(dead, math.floor(r / 8) + 1) or 0
  return math.floor(b / 2 ^ (7 - r % 8)) % 2 == 1  -- (SETBIT 0 is the first byte's MSB)
end

local function drop_segment(P, seq)
  local p = P.seg_prefix
  redis.call('DEL', p .. seq .. ':f', p .. seq .. ':i', p .. seq .. ':d', p .. seq .. ':t')
  redis.call('HDEL', P.seg_live, seq)
  redis.call('HDEL', P.seg_width, seq)
  redis.call('ZREM', P.seg_time, seq)
end

-- Compacts segment seq in place if at most seven eighths of its rows live (live: its live count, just read).
-- The writer stores a capped pool's rows best first and evictions take the lowest-ranked items, so dead
-- rows gather at a segment's end: if cutting off its dead last rows is enough (at most an eighth of the
-- rows left are dead: a labeled row near its front, say), that is all it does. Otherwise the rows before
-- its first dead row stay where they are and the live rows after it close up behind them (runs of live
-- rows copied whole: rows, id lengths, ids); only those get a new location. The row count is the index
-- blob's first 4 bytes: the blob is read only to compact. The token changes (a re-rank's cached copy of
-- the segment is stale); its number and age stay.
local function compact(P, seq, live)
  local p = P.seg_prefix
  local n = segment_rows(P, seq)
  if not n or n < 4 or live * 8 > n * 7 then return end
  local dead = redis.call('GET', p .. seq .. ':d') or ''
  local last = n  -- rows last .. n - 1 are dead
  while last > 0 and row_dead(dead, last - 1) do last = last - 1 end
  local first = last  -- rows before first stay where they are
  if live * 8 <= last * 7 then first = redis.call('BITPOS', p .. seq .. ':d', 1) end
  if first < 0 or first >= n then return end
  local blob = redis.call('GET', p .. seq .. ':i')
  local rb = tonumber(redis.call('HGET', P.seg_width, seq))
  local rows = redis.call('GET', p .. seq .. ':f')
  local pos = 5 + 2 * n  -- (where row r's id starts in the blob: first past the rows before the first dead one)
  for r = 0, first - 1 do
    local lo, hi = string.byte(blob, 5 + 2 * r, 6 + 2 * r)
    pos = pos + lo + 256 * hi
  end
  local parts, lens, ids = {string.sub(rows, 1, first * rb)}, {string.sub(blob, 5, 4 + 2 * first)}, {string.sub(blob, 5 + 2 * n, pos - 1)}
  local locs, k, run, run_pos = {}, first, nil, nil
  local function flush(stop)  -- the live rows run .. stop - 1, whose ids start at run_pos and end before pos
    parts[#parts + 1] = string.sub(rows, run * rb + 1, stop * rb)
    lens[#lens + 1] = string.sub(blob, 5 + 2 * run, 4 + 2 * stop)
    ids[#ids + 1] = string.sub(blob, run_pos, pos - 1)
    run = nil
  end
  local at = seq .. ':'
  local byte = ((string.byte(dead, math.floor(first / 8) + 1) or 0) * 2 ^ (first % 8)) % 256  -- (row first's bit on)
  for r = first, n - 1 do
    if r % 8 == 0 then byte = string.byte(dead, r / 8 + 1) or 0 end
    local is_dead = byte >= 128  -- (SETBIT 0 is the first byte's MSB: shifted out to the left, row by row)
    byte = (byte % 128) * 2
    local lo, hi = string.byte(blob, 5 + 2 * r, 6 + 2 * r)
    local len = lo + 256 * hi
    if not is_dead then
      if not run then run, run_pos = r, pos end
      locs[2 * (k - first) + 1], locs[2 * (k - first) + 2] = string.sub(blob, pos, pos + len - 1), at .. row_name(k)
      k = k + 1
    elseif run then
      flush(r)
    end
    pos = pos + len
  end
  if run then flush(n) end
  call_chunks('HSET', P.featloc, locs)
  local t = redis.call('TIME')
  redis.call('SET', p .. seq .. ':f', table.concat(parts))
  redis.call('SET', p .. seq .. ':i', struct.pack('<I4', k) .. table.concat(lens) .. table.concat(ids))
  if first < last or live == last then
    redis.call('DEL', p .. seq .. ':d')  -- (no dead row left)
  else  -- the dead rows before the cut keep their bits; those past it go
    local keep = math.ceil(last / 8)
    local b = string.byte(dead, keep) or 0
    if last % 8 > 0 then b = b - b % 2 ^ (8 - last % 8) end
    redis.call('SET', p .. seq .. ':d', string.sub(dead, 1, keep - 1) .. string.char(b))
  end
  redis.call('SET', p .. seq .. ':t', t[1] .. '.' .. t[2] .. ':' .. k)  -- (never the token it had: fewer rows now)
end

-- Evicts the pending items ids (distinct). Returns nothing.
local function evict_many(P, ids)
  if #ids == 0 then return end
  local locs = call_concat('HMGET', P.featloc, ids)
  local skipped = call_concat('HMGET', P.skips, ids)  -- (an item has skippers iff it has a skip count: skip.lua writes both)
  call_chunks('ZREM', P.pending, ids)
  call_chunks('HDEL', P.featloc, ids)
  call_chunks('HDEL', P.metadata, ids)
  if redis.call('EXISTS', P.lock) == 1 then call_chunks('SADD', P.removed, ids) end  -- (a running re-rank leaves them out)
  for k, id in ipairs(ids) do
    if skipped[k] then forget_skips(P.skips, P.skippers_prefix, P.skipped_by_prefix, id) end
  end
  -- Their rows die, grouped by segment: the live count once, the dead bits in one BITFIELD.
  local rows, order = {}, {}
  for k = 1, #ids do
    local loc = locs[k]
    if loc and loc ~= '' then
      local sep = string.find(loc, ':', 1, true)
      local seq = string.sub(loc, 1, sep - 1)
      local r = rows[seq]
      if not r then
        r = {}
        rows[seq] = r
        order[#order + 1] = seq
      end
      r[#r + 1] = string.sub(loc, sep + 1)
    end
  end
  for _, seq in ipairs(order) do
    local r = rows[seq]
    local live = redis.call('HINCRBY', P.seg_live, seq, -#r)
    if live <= 0 then
      drop_segment(P, seq)
    else
      local ops = {}
      for j, row in ipairs(r) do ops[4 * j - 3], ops[4 * j - 2], ops[4 * j - 1], ops[4 * j] = 'SET', 'u1', row, 1 end
      for lo = 1, #ops, 4 * 250 do  -- (bit <row> set, as SETBIT <row> 1)
        redis.call('BITFIELD', P.seg_prefix .. seq .. ':d', unpack(ops, lo, math.min(#ops, lo + 4 * 250 - 1)))
      end
      if not P.no_compact then compact(P, seq, live) end
    end
  end
end
