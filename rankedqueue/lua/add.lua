-- Enqueues one batch as one segment; ids already known (pending, leased, labeled, dropped) change nothing.
-- Returns the number of items newly added.
-- KEYS: pending, featloc, meta, seg_live, seg_time, seg_width, metadata
-- ARGV: now ('': Redis's time), seg_prefix, row_bytes, n, rows (n * row_bytes), has_metadata ('0'/'1'), dtype,
--       ids blob (uint32 n, n uint16 lengths, the ids), scores (n little-endian doubles),
--       then n ids, then (if has_metadata) n JSON objects or ''
local now, prefix, rb, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local rows, has_md, scores = ARGV[5], ARGV[6] == '1', ARGV[9]
local dtype = redis.call('HGET', KEYS[3], 'feature_dtype')
if not dtype then
  redis.call('HSET', KEYS[3], 'feature_dtype', ARGV[7])
elseif dtype ~= ARGV[7] then
  return redis.error_reply('queue stores features as ' .. dtype .. ', not ' .. ARGV[7])
end
local seq = redis.call('HINCRBY', KEYS[3], 'segseq', 1)
local loc_prefix = seq .. ':'
local first_id = 10
-- HSETNX: only an id never seen (not pending, leased, labeled or dropped) gets in, the first
-- time it comes (a duplicate within the batch too); the new ones are ZADDed in bulk (Lua's
-- unpack() is bounded by its C stack, hence the chunks).
local new, added, zargs = {}, 0, {}
for i = 1, n do
  local id = ARGV[first_id + i - 1]
  if redis.call('HSETNX', KEYS[2], id, loc_prefix .. added) == 1 then
    added = added + 1
    new[added] = i
    zargs[#zargs + 1] = struct.unpack('<d', scores, 8 * i - 7)
    zargs[#zargs + 1] = id
    if #zargs >= 4000 then
      redis.call('ZADD', KEYS[1], unpack(zargs))
      zargs = {}
    end
    if has_md then
      local md = ARGV[first_id + n + i - 1]
      if md ~= '' then redis.call('HSET', KEYS[7], id, md) end
    end
  end
end
if #zargs > 0 then redis.call('ZADD', KEYS[1], unpack(zargs)) end
if added == 0 then return 0 end
local data, blob = rows, ARGV[8]
if added < n then  -- some were known: keep only the new rows and ids
  local parts, lens, ids = {}, {}, {}
  for j = 1, added do
    local i = new[j]
    local id = ARGV[first_id + i - 1]
    parts[j] = string.sub(rows, (i - 1) * rb + 1, i * rb)
    lens[j] = struct.pack('<H', #id)
    ids[j] = id
  end
  data = table.concat(parts)
  blob = struct.pack('<I4', added) .. table.concat(lens) .. table.concat(ids)
end
redis.call('SET', prefix .. seq .. ':f', data)
redis.call('SET', prefix .. seq .. ':i', blob)
redis.call('HSET', KEYS[4], seq, added)
redis.call('HSET', KEYS[6], seq, rb)
local t = redis.call('TIME')
redis.call('SET', prefix .. seq .. ':t', t[1] .. '.' .. t[2])
if now == '' then now = tonumber(t[1]) + tonumber(t[2]) / 1e6 end  -- (the queue's clock: Redis's)
redis.call('ZADD', KEYS[5], now, seq)
return added
