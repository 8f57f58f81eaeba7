-- Hands back (at their old score) up to `limit` leases that ran out by `now`; returns how many.
-- Runs after the fragments fn_release_owner, fn_hand_back (joined by scripts.py).
-- KEYS: leased, pending, lease_owner, last_score ; ARGV: now, owned_prefix, limit
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do hand_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], id) end
return #due
