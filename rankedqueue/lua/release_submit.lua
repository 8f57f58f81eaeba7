-- Ends the holds of labels being published (see QueueKeys.submitting): deletes each key that still holds its request's
-- token (a hold that ran out and was taken by another request stays that request's). Returns the holds ended.
-- KEYS: submitting keys; ARGV: their tokens, in the same order.
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then n = n + redis.call('DEL', key) end
end
return n
