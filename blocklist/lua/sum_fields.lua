-- sum_fields.lua: the sums of some fields over some hashes of one slot (a bucket's daily
-- counts over a month), so that a reader gets two numbers instead of a reply per hash.
-- KEYS    the hashes (missing ones count nothing)
-- ARGV    the fields
-- Returns the sum of each field, in ARGV's order.

local sums = {}
for i = 1, #ARGV do
  sums[i] = 0
end
for _, key in ipairs(KEYS) do
  local values = redis.call('HMGET', key, unpack(ARGV))
  for i = 1, #ARGV do
    sums[i] = sums[i] + (tonumber(values[i]) or 0)
  end
end
return sums
