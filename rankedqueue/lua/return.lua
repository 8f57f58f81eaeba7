-- Hands a leased item back as if never leased (no skip counted); only its holder may. 1 if returned.
-- (The holder's unclaim.)
-- Runs after the fragments fn_release_owner, fn_hand_back (joined by scripts.py).
-- KEYS: leased, pending, lease_owner, last_score, control ; ARGV: item_id, holder, owned_prefix
local id = ARGV[1]
if not redis.call('ZSCORE', KEYS[1], id) or redis.call('HGET', KEYS[3], id) ~= ARGV[2] then return 0 end
hand_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[3], id)
redis.call('HDEL', KEYS[5], id)
return 1
