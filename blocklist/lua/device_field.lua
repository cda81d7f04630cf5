-- device_field.lua: set a field of a hash that belongs to a device, only while the device
-- exists, as one step on the device's slot: an erasure either finds the field or refuses it.
-- Used for the encrypted numbers and consents of its Do-Not-Call record and for the list of
-- its complaints.
-- KEYS[1] the device's record (hash)   KEYS[2] the device's hash to set the field in
-- ARGV[1] the field   ARGV[2] its value
-- Returns 1 when set, 0 when the device was erased (nothing written).

if redis.call('HEXISTS', KEYS[1], 'h') == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
