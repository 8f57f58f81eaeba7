-- Leases those of the ids still pending; returns {id, score, id, score, ...} of the claimed ones.
-- KEYS: pending, leased, lease_owner, last_score, owned, control
-- ARGV: expires_at, labeler, control ('1'/'0'), most items the labeler may hold (-1: no limit), ids...
-- (every claim records whether it is a random-control pick: a new lease replaces the old record)
local out, cap = {}, tonumber(ARGV[4])
for i = 5, #ARGV do
  local id = ARGV[i]
  if cap >= 0 and redis.call('SCARD', KEYS[5]) >= cap then break end
  local s = redis.call('ZSCORE', KEYS[1], id)
  if s then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[1], id)
    redis.call('HSET', KEYS[3], id, ARGV[2])
    redis.call('HSET', KEYS[4], id, s)
    redis.call('SADD', KEYS[5], id)
    if ARGV[3] == '1' then redis.call('HSET', KEYS[6], id, ARGV[2]) else redis.call('HDEL', KEYS[6], id) end
    table.insert(out, id)
    table.insert(out, s)
  end
end
return out
