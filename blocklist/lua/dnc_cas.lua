-- dnc_cas.lua: compare and set one field of a Do-Not-Call group's hash, and with it set or
-- delete a field of a second hash of the same group (a registration and its accept windows),
-- as one step on the group's slot. Python computes the values; this makes the write atomic.
-- KEYS[1] the hash whose field is compared   KEYS[2] (optional) a second hash of the group
-- ARGV[1] the field   ARGV[2] its value expected now ('' : absent)   ARGV[3] its new value ('' : delete)
-- ARGV[4] the field of KEYS[2]   ARGV[5] its new value ('' : delete)
-- Returns 1 when written, 0 when the field had changed meanwhile (nothing written).

local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then
  return 0
end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
if KEYS[2] then
  if ARGV[5] == '' then
    redis.call('HDEL', KEYS[2], ARGV[4])
  else
    redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
  end
end
return 1
