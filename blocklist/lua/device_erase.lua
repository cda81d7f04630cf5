-- device_erase.lua: the first step of erasing a device: its record goes, so no write of it
-- is admitted any more (device_admit.lua), and the numbers it voted on are read in the same step.
-- KEYS[1] the device's record (hash)   KEYS[2] the set of numbers the device voted on (digits)
-- Returns the digits of every number the device voted on, or may still be voting on.

redis.call('DEL', KEYS[1])
return redis.call('SMEMBERS', KEYS[2])
