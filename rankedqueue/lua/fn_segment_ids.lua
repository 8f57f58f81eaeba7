-- Fragment: defines segment_ids(), the item ids of a segment's index blob (``seg:<n>:i``), in row order.
-- The blob: row count (uint32 LE), each id's length (uint16 LE), then the ids back to back.
local function segment_ids(blob)
  local n = struct.unpack('<I4', blob, 1)
  local ids, pos = {}, 5 + 2 * n
  for i = 1, n do
    local len = struct.unpack('<H', blob, 3 + 2 * i)
    ids[i] = string.sub(blob, pos, pos + len - 1)
    pos = pos + len
  end
  return ids
end
