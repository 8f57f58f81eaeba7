-- Fragment: defines release_owner(), which forgets who holds an item's lease (lease_owner entry
-- and the owner's owned:<owner> set). The per-owner sets are found at run time from the lease
-- owner (single-node Redis; a Redis Cluster deployment would need hash tags on the namespace).
-- Arguments: lease_owner, owned_prefix, item id.
local function release_owner(owner_hash, owned_prefix, id)
  local owner = redis.call('HGET', owner_hash, id)
  if owner then
    redis.call('SREM', owned_prefix .. owner, id)
    redis.call('HDEL', owner_hash, id)
  end
end
