-- dnc_verify.lua: check a Do-Not-Call verification code, as one step on its record, so that
-- no two guesses share an attempt and a right code is used once.
-- KEYS[1] the verification (hash: d device, c keyed code hash, a attempts left, x expiry,
--         e the number AES-GCM encrypted, r its region, z its time zone)
-- ARGV[1] the device id   ARGV[2] the keyed hash of the code tried   ARGV[3] now (unix seconds)
-- Returns {'unknown'} (none, or another device's), {'expired'}, {'exhausted'} (nothing
-- written), {'wrong', attempts left} (one attempt spent), or {'ok', e, r, z} (the record
-- deleted).

local v = redis.call('HMGET', KEYS[1], 'd', 'c', 'a', 'x', 'e', 'r', 'z')
if not v[1] or v[1] ~= ARGV[1] then
  return {'unknown'}
end
if tonumber(v[4]) <= tonumber(ARGV[3]) then
  return {'expired'}
end
local left = tonumber(v[3])
if left <= 0 then
  return {'exhausted'}
end
if v[2] ~= ARGV[2] then
  redis.call('HSET', KEYS[1], 'a', left - 1)
  return {'wrong', left - 1}
end
redis.call('DEL', KEYS[1])
return {'ok', v[5], v[6], v[7]}
