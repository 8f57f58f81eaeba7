-- A labeler passes on an item: hands a lease back or counts a skip on a pending item, dropping it at max_skips.
-- Returns {the skip count, 0 if dropped, -1 if unknown, -2 if leased to someone else; 1 if the call changed anything,
-- 0 for a retried skip (a record read again) of a pending item: nothing, not even the time its group passed on it}.
-- A skip naming the lease it passed on (ARGV[10], its end; '' for any) while the holder holds another lease of the item
-- (a skip record read again after the group leased the item anew, more than its ack timeout later) changes nothing.
-- Runs after the fragments fn_release_owner, fn_kill_row, fn_forget_skips (joined by scripts.py).
-- KEYS: leased, pending, lease_owner, last_score, skips, skipped_by, dropped, featloc, metadata,
--       seg_live, seg_time, seg_width, rerank_lock, rerank_removed, control, passed (holder)
-- ARGV: item_id, max_skips, owned_prefix, seg_prefix, labeler_id, holder, now, skippers_prefix, skipped_by_prefix, lease
-- Only the lease holder hands a leased item back (-2 for anyone else); a pending item may be
-- skipped by anyone it could be offered to. Each labeler counts once towards max_skips, so a
-- retried skip changes nothing. A holder other than the labeler (the dispatcher's group lease)
-- records when its labeler passed on the item, so the group gets other work first.
local id = ARGV[1]
local leased = redis.call('ZSCORE', KEYS[1], id)
if leased and redis.call('HGET', KEYS[3], id) ~= ARGV[6] then return {-2, 0} end
if leased and ARGV[10] ~= '' and tonumber(leased) ~= tonumber(ARGV[10]) then
  return {tonumber(redis.call('HGET', KEYS[5], id) or '0'), 0}
end
local s = redis.call('HGET', KEYS[4], id)
if not s then s = redis.call('ZSCORE', KEYS[2], id) end
if not s then return {-1, 0} end
if not leased and redis.call('SISMEMBER', KEYS[6], id) == 1 then
  return {tonumber(redis.call('HGET', KEYS[5], id) or '0'), 0}
end
if ARGV[6] ~= ARGV[5] then redis.call('ZADD', KEYS[16], ARGV[7], id) end
if leased then
  redis.call('ZREM', KEYS[1], id)
  release_owner(KEYS[3], ARGV[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('HDEL', KEYS[15], id)
end
local n
if redis.call('SADD', KEYS[6], id) == 1 then
  redis.call('SADD', ARGV[8] .. id, ARGV[5])
  n = redis.call('HINCRBY', KEYS[5], id, 1)
else
  n = tonumber(redis.call('HGET', KEYS[5], id) or '0')
end
if n >= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[2], id)
  redis.call('SADD', KEYS[7], id)
  kill_row(KEYS[8], KEYS[10], KEYS[11], KEYS[12], ARGV[4], KEYS[13], KEYS[14], id)
  redis.call('HDEL', KEYS[9], id)
  redis.call('HDEL', KEYS[15], id)
  forget_skips(KEYS[5], ARGV[8], ARGV[9], id)
  return {0, 1}
end
redis.call('ZADD', KEYS[2], s, id)
return {n, 1}
