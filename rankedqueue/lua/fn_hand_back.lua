-- Fragment (needs fn_release_owner): defines hand_back(): a lease ends without a label or skip,
-- so the item goes back to the queue at the score it had.
-- Arguments: leased, pending, lease_owner, last_score, owned_prefix, item id.
local function hand_back(leased, pending, lease_owner, last_score, owned_prefix, id)
  redis.call('ZREM', leased, id)
  redis.call('ZADD', pending, redis.call('HGET', last_score, id) or '0', id)
  release_owner(lease_owner, owned_prefix, id)
  redis.call('HDEL', last_score, id)
end
