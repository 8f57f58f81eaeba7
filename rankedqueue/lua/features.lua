-- Reads the stored feature rows of ids: {feature_dtype, row bytes or false per id}.
-- KEYS: featloc, seg_width, meta ; ARGV: seg_prefix, ids...
local out = {redis.call('HGET', KEYS[3], 'feature_dtype') or 'float32'}
for i = 2, #ARGV do
  local loc = redis.call('HGET', KEYS[1], ARGV[i])
  local row = false
  if loc and loc ~= '' then
    local sep = string.find(loc, ':', 1, true)
    local seq = string.sub(loc, 1, sep - 1)
    local w = tonumber(redis.call('HGET', KEYS[2], seq))
    local r = tonumber(string.sub(loc, sep + 1))
    row = redis.call('GETRANGE', ARGV[1] .. seq .. ':f', r * w, r * w + w - 1)
  end
  out[i] = row
end
return out
