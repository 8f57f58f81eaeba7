-- Starts a bulk re-rank: takes the lock and snapshots {segseq, feature_dtype, seg_width}; nil if another runs.
-- KEYS: rerank_lock, rerank_removed, meta, seg_width ; ARGV: token, ttl_ms
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
redis.call('DEL', KEYS[2])
return {redis.call('HGET', KEYS[3], 'segseq') or '0', redis.call('HGET', KEYS[3], 'feature_dtype') or 'float32',
        redis.call('HGETALL', KEYS[4])}
