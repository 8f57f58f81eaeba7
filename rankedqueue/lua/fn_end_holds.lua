-- Fragment: defines end_holds(), which ends the holds of labels being published (see QueueKeys.submitting): deletes
-- each of n submitting keys (KEYS[first_key], ...) that still holds its request's token (ARGV[first_arg], ... in the
-- same order; a hold that ran out and was taken by another request stays that request's). Returns the holds ended.
local function end_holds(first_key, first_arg, n)
  local ended = 0
  for i = 0, n - 1 do
    if redis.call('GET', KEYS[first_key + i]) == ARGV[first_arg + i] then ended = ended + redis.call('DEL', KEYS[first_key + i]) end
  end
  return ended
end
