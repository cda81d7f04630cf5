-- dnc_zone.lua: the deployment's index of a time zone, given on first use and never changed.
-- KEYS[1] the time zones (hash: name -> index, '#<index>' -> name, '#' the last index given)
-- ARGV[1] the zone's name
-- Returns its index (1, 2, ...).

local index = redis.call('HGET', KEYS[1], ARGV[1])
if index then
  return tonumber(index)
end
index = redis.call('HINCRBY', KEYS[1], '#', 1)
redis.call('HSET', KEYS[1], ARGV[1], index, '#' .. index, ARGV[1])
return index
