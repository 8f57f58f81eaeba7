-- Takes auto-accepted items out of the queue for good: only those still waiting (pending, not
-- leased: a labeler holding one answers it). Runs after the fragments fn_kill_row, fn_forget_skips
-- (rankedqueue.auto_accept).
-- The featloc tombstone makes a later record of the id a duplicate, as for a labeled item.
-- An item waiting as an audit (in the audit hash) stays: a labeler is to answer it blind.
-- KEYS: pending, featloc, metadata, seg_live, seg_time, seg_width, rerank_lock, rerank_removed, control, audit, skips
-- ARGV: seg_prefix, skippers_prefix, skipped_by_prefix, then the item ids
-- Returns the ids taken.
local taken = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[10], id) == 0 and redis.call('ZREM', KEYS[1], id) == 1 then
    kill_row(KEYS[2], KEYS[4], KEYS[5], KEYS[6], ARGV[1], KEYS[7], KEYS[8], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[9], id)
    forget_skips(KEYS[11], ARGV[2], ARGV[3], id)  -- (skip records of an item gone for good go with it)
    taken[#taken + 1] = id
  end
end
return taken
