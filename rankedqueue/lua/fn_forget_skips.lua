-- Fragment: defines forget_skips(): an item that leaves for good takes its skip records with it.
-- Who skipped it (a set per skipped item) tells which labelers' skipped_by sets hold it, so none
-- of them grows forever.
-- Arguments: skips, skippers_prefix, skipped_by_prefix, item id.
local function forget_skips(skips, skippers_prefix, skipped_by_prefix, id)
  local who = skippers_prefix .. id
  for _, labeler in ipairs(redis.call('SMEMBERS', who)) do redis.call('SREM', skipped_by_prefix .. labeler, id) end
  redis.call('DEL', who)
  redis.call('HDEL', skips, id)
end
