-- Undoes a failed bulk re-rank: drops its scratch set and releases the lock if still ours.
-- KEYS: rerank_lock, rerank_removed, tmp ; ARGV: token
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1], KEYS[2]) end
return 1
