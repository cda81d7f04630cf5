-- device_note.lua: note a device's new and changed votes for its trust review, as one step on
-- the device's slot, and only while the device exists: a report still in flight when the
-- device is erased leaves nothing behind.
-- KEYS[1] the device's record (hash)   KEYS[2] the numbers it tagged today (set of digits)
-- KEYS[3] how many tags it gave today (counter)
-- ARGV[1] seconds both are kept   ARGV[2..n] the digits of the numbers
-- Returns 1 when the device exists (noted), 0 when it was erased (nothing written).

if redis.call('HEXISTS', KEYS[1], 'h') == 0 then
  return 0
end
redis.call('SADD', KEYS[2], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('INCRBY', KEYS[3], #ARGV - 1)
redis.call('EXPIRE', KEYS[3], ARGV[1])
return 1
