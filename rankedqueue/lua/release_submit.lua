-- Ends the holds of labels being published (end_holds()). Returns the holds ended.
-- Runs after the fragment fn_end_holds (joined by scripts.py).
-- KEYS: submitting keys; ARGV: their tokens, in the same order.
return end_holds(1, 1, #KEYS)
