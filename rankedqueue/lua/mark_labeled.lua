-- Takes labeled items out of the queue for good (idempotent by label id): per (label id, item id) pair, 1, or 0 for a
-- label id seen before. Several pairs in one call: a batch of labels costs one script call, not one each. Then ends the
-- holds of the labels just published (see QueueKeys.submitting) in the same call: a hold never ends before its marks,
-- even when the call is run again after a NOSCRIPT (a twin sent meanwhile would find the item unheld, its label unknown).
-- Runs after the fragments fn_release_owner, fn_kill_row, fn_forget_skips, fn_end_holds (joined by scripts.py).
-- KEYS: label_ids, pending, leased, lease_owner, last_score, labeled, featloc, metadata, skips,
--       seg_live, seg_time, seg_width, rerank_lock, rerank_removed, control, dropped, then the holds' submitting keys
-- ARGV: owned_prefix, seg_prefix, skippers_prefix, skipped_by_prefix, the number of holds h, their h tokens (in the
--       order of their keys), then label_id, item_id pairs
local h = tonumber(ARGV[5])
local out = {}
for j = 6 + h, #ARGV, 2 do
  if redis.call('SADD', KEYS[1], ARGV[j]) == 0 then
    out[#out + 1] = 0
  else
    local id = ARGV[j + 1]
    redis.call('HDEL', KEYS[15], id)
    redis.call('SREM', KEYS[16], id)  -- labeled after all (e.g. from a labeler who had it before the drop)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    release_owner(KEYS[4], ARGV[1], id)
    redis.call('HDEL', KEYS[5], id)
    redis.call('SADD', KEYS[6], id)
    kill_row(KEYS[7], KEYS[10], KEYS[11], KEYS[12], ARGV[2], KEYS[13], KEYS[14], id)
    redis.call('HDEL', KEYS[8], id)
    forget_skips(KEYS[9], ARGV[3], ARGV[4], id)
    out[#out + 1] = 1
  end
end
end_holds(17, 6, h)
return out
