-- device_admit.lua: admit a device's votes and note the numbers they go to, as one step
-- on the device's slot, so that an erasure (device_erase.lua) either refuses them or finds them.
-- KEYS[1] the device's record (hash)   KEYS[2] the set of numbers the device voted on (digits)
-- ARGV[1..n] the digits of the numbers it is about to vote on (none: only the check)
-- Returns 1 when the device exists (the numbers are noted), 0 when it was erased (nothing written).

if redis.call('HEXISTS', KEYS[1], 'h') == 0 then
  return 0
end
if #ARGV > 0 then
  redis.call('SADD', KEYS[2], unpack(ARGV))
end
return 1
