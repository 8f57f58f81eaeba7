-- Fragment: defines the enqueue script's segment writes (runs after fn_evict, whose call_chunks(), segment_rows(), row_dead()
-- and drop_segment() it uses).
-- write_rows() puts rows down: appended to an open segment, else as a new one. take_live() takes a sparse segment's live
-- rows out of it, for write_rows() to put in a fuller one: without it, a pool whose labelers take the top and whose
-- evictions take the bottom keeps a segment for every few mid-ranked items, and every segment costs its keys' memory and a
-- re-rank's reads. A segment's time (seg_time) is that of its oldest row; its token (':t') changes with every write.
-- R: the rows to write, as three lists: R.parts (the rows' bytes), R.lens (each id's length, uint16 LE), R.ids.

-- Writes R (rows of rb bytes, enqueued at time t) at the end of segment `into`, which holds n rows, or in a new segment
-- (into = nil); stamp: the server time, for the token. Returns the segment's number.
local function write_rows(P, R, rb, t, stamp, into, n)
  local p, k, seq = P.seg_prefix, #R.ids, into
  if into then
    -- (SET, not APPEND: APPEND leaves the string up to twice its length allocated; the segment's bytes keep this copy small)
    redis.call('SET', p .. into .. ':f', redis.call('GET', p .. into .. ':f') .. table.concat(R.parts))
    local blob = redis.call('GET', p .. into .. ':i')
    redis.call('SET', p .. into .. ':i', struct.pack('<I4', n + k) .. string.sub(blob, 5, 4 + 2 * n) .. table.concat(R.lens)
                                          .. string.sub(blob, 5 + 2 * n) .. table.concat(R.ids))
    redis.call('HINCRBY', P.seg_live, into, k)
    if tonumber(t) < tonumber(redis.call('ZSCORE', P.seg_time, into) or t) then redis.call('ZADD', P.seg_time, t, into) end
    redis.call('SET', p .. into .. ':t', stamp .. ':' .. (n + k) .. '+')  -- (a compaction's token never ends in '+')
  else
    seq, n = redis.call('HINCRBY', P.meta, 'segseq', 1), 0
    redis.call('SET', p .. seq .. ':f', table.concat(R.parts))
    redis.call('SET', p .. seq .. ':i', struct.pack('<I4', k) .. table.concat(R.lens) .. table.concat(R.ids))
    redis.call('HSET', P.seg_live, seq, k)
    redis.call('HSET', P.seg_width, seq, rb)
    redis.call('SET', p .. seq .. ':t', stamp)
    redis.call('ZADD', P.seg_time, t, seq)
  end
  local fl = {}
  for r, id in ipairs(R.ids) do fl[2 * r - 1], fl[2 * r] = id, seq .. ':' .. (n + r - 1) end
  call_chunks('HSET', P.featloc, fl)
  return seq
end

-- Segment `into` if R (k rows of rb bytes, the oldest enqueued at time t) may be appended to it: it still holds a row, of the
-- same width, it would hold at most `grow` rows, and (unless oldest = true: its time becomes the older of the two) its time
-- is at most `window` seconds before t. Returns (into, its row count), or nil.
local function open_segment(P, into, k, rb, t, grow, window, oldest)
  if not into or redis.call('HGET', P.seg_width, into) ~= tostring(rb) then return nil end
  local n = segment_rows(P, into)
  if not n or n + k > grow then return nil end
  if not oldest and tonumber(redis.call('ZSCORE', P.seg_time, into) or '-inf') < tonumber(t) - window then return nil end
  return into, n
end

-- Moves the live rows of segment seq (leased ones too) into R and frees the segment. Returns its time.
local function take_live(P, R, seq)
  local p = P.seg_prefix
  local blob, rows = redis.call('GET', p .. seq .. ':i'), redis.call('GET', p .. seq .. ':f')
  local dead = redis.call('GET', p .. seq .. ':d') or ''
  local rb = tonumber(redis.call('HGET', P.seg_width, seq))
  local n = struct.unpack('<I4', blob)
  local pos = 5 + 2 * n
  for r = 0, n - 1 do
    local lo, hi = string.byte(blob, 5 + 2 * r, 6 + 2 * r)
    local len = lo + 256 * hi
    if not row_dead(dead, r) then
      R.parts[#R.parts + 1] = string.sub(rows, r * rb + 1, (r + 1) * rb)
      R.lens[#R.lens + 1] = string.sub(blob, 5 + 2 * r, 6 + 2 * r)
      R.ids[#R.ids + 1] = string.sub(blob, pos, pos + len - 1)
    end
    pos = pos + len
  end
  local t = redis.call('ZSCORE', P.seg_time, seq)
  drop_segment(P, seq)
  return t
end

-- Looks at the next segments (a cursor over seg_width, kept in meta 'mergecursor': about `look` of them, all of them while
-- the hash is small, as HSCAN returns a small hash whole) and moves the live rows of at most `look` sparse ones (fewer
-- than grow / 8 live, of width rb, not the `busy` one) into the merge segment (meta 'mergeseq') while it has room (grow
-- rows), or into a new one; t: the time to give them if none of their segments has one. Returns the rows moved.
local function merge_sparse(P, rb, stamp, grow, look, busy, t)
  local got = redis.call('HSCAN', P.seg_width, redis.call('HGET', P.meta, 'mergecursor') or '0', 'COUNT', look)
  redis.call('HSET', P.meta, 'mergecursor', got[1])
  local seqs = {}
  for j = 1, #got[2], 2 do
    local seq = got[2][j]
    if got[2][j + 1] == tostring(rb) and seq ~= busy then seqs[#seqs + 1] = seq end
  end
  if #seqs == 0 then return 0 end
  local live = redis.call('HMGET', P.seg_live, unpack(seqs))
  local target = redis.call('HGET', P.meta, 'mergeseq')
  local into, n = open_segment(P, target, 0, rb, 0, grow, 0, true)
  if into and (grow - n) * 8 < grow then into, n = nil, nil end  -- (nearly full: a new one)
  local R, oldest, room, taken = {parts = {}, lens = {}, ids = {}}, nil, grow - (n or 0), 0
  for j, seq in ipairs(seqs) do
    local m = tonumber(live[j] or '0')
    if taken < look and m > 0 and m * 8 < grow and m <= room - #R.ids and seq ~= target then
      local ts = take_live(P, R, seq)
      taken = taken + 1
      if ts and (not oldest or tonumber(ts) < tonumber(oldest)) then oldest = ts end
    end
  end
  if #R.ids == 0 then return 0 end
  local seq = write_rows(P, R, rb, oldest or t, stamp, into, n)
  if seq ~= into then redis.call('HSET', P.meta, 'mergeseq', seq) end
  return #R.ids
end
