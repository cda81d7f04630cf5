-- dnc_note.lua: note an encrypted number (or consent) in a device's Do-Not-Call record, only
-- while the device exists, as one step on the device's slot: an erasure either finds the
-- note or refuses it.
-- KEYS[1] the device's record (hash)   KEYS[2] its Do-Not-Call record (hash)
-- ARGV[1] the field   ARGV[2] its value
-- Returns 1 when noted, 0 when the device was erased (nothing written).

if redis.call('HEXISTS', KEYS[1], 'h') == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
