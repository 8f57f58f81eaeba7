-- Extends the leases `holder` still holds; returns how many it extended.
-- KEYS: leased, lease_owner ; ARGV: expires_at, holder, ids...
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[2] and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], id)
    n = n + 1
  end
end
return n
