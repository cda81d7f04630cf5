-- complaint_count.lua: count a complaint in its month's public figures, once per device,
-- number and day, as one step in the figures' own slot.
-- KEYS[1] the month's counts (hash)   KEYS[2] the day's (device, number) hashes seen (set)
-- ARGV[1] the keyed hash of (device, number)   ARGV[2] the day-of-month field (`d07`)
-- ARGV[3] the tag field (`t:loan`)   ARGV[4] seconds the day's set is kept
-- Returns 1 when counted, 0 when this device already complained of this number that day.

if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
return 1
