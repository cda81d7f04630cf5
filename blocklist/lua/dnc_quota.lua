-- dnc_quota.lua: spend part of a scrub key's daily quota, all of it or nothing.
-- KEYS[1] the key's counter for the day   ARGV[1] numbers to spend   ARGV[2] the daily quota
-- ARGV[3] seconds the counter is kept
-- Returns 1 when spent, 0 when it does not fit (nothing written).

local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
  return 0
end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
