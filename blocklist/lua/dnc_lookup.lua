-- dnc_lookup.lua: the scrub's lookups in one Do-Not-Call group, one call for many numbers.
-- KEYS[1..k] registration buckets of one group (they share its hash tag)
-- ARGV[2i-1] the index in KEYS of number i's bucket   ARGV[2i] its field
-- Returns the packed record of each number, or false where it has none.

local out = {}
for i = 1, #ARGV, 2 do
  out[#out + 1] = redis.call('HGET', KEYS[tonumber(ARGV[i])], ARGV[i + 1])
end
return out
