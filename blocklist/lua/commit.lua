-- commit.lua: make a new version of one list visible, all at once or not at all.
-- KEYS[1] the list's state hash   KEYS[2] its snapshot   KEYS[3] its member set
-- KEYS[4 .. 3+n_set]  delta keys to write (values in ARGV, same order)
-- KEYS[4+n_set ..]    delta keys to delete (versions past the retention)
-- ARGV[1] fencing token of this publisher     ARGV[2] version this publish started from (0: none)
-- ARGV[3] new state fields as a JSON object   ARGV[4] new snapshot ('' keeps the stored one)
-- ARGV[5] n_add   ARGV[6] n_remove   ARGV[7] n_set
-- ARGV[8 ..] the numbers to add, then those to remove, then the delta values
-- Fails with STALE when a publisher with a newer token committed, or when the version moved
-- since this publish read it: two publishers can never both write the same version.

local state, snapshot, members = KEYS[1], KEYS[2], KEYS[3]
local fence, started_from = tonumber(ARGV[1]), tonumber(ARGV[2])
local n_add, n_remove, n_set = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

local current = redis.call('HMGET', state, 'fence', 'version')
if tonumber(current[1] or '0') > fence then
  return redis.error_reply('STALE a newer publisher has committed')
end
if tonumber(current[2] or '0') ~= started_from then
  return redis.error_reply('STALE the list moved on since this publish read it')
end

local CHUNK = 5000  -- arguments per SADD/SREM, well under Lua's stack limit
local function apply(command, first, count)
  local i = first
  while i < first + count do
    local last = math.min(i + CHUNK - 1, first + count - 1)
    redis.call(command, members, unpack(ARGV, i, last))
    i = last + 1
  end
end
apply('SADD', 8, n_add)
apply('SREM', 8 + n_add, n_remove)

local values = 8 + n_add + n_remove
for j = 1, n_set do
  redis.call('SET', KEYS[3 + j], ARGV[values + j - 1])
end
for j = 4 + n_set, #KEYS do
  redis.call('DEL', KEYS[j])
end
if ARGV[4] ~= '' then
  redis.call('SET', snapshot, ARGV[4])
end
local fields = cjson.decode(ARGV[3])
local flat = {'fence', fence}
for name, value in pairs(fields) do
  flat[#flat + 1] = name
  flat[#flat + 1] = tostring(value)
end
redis.call('HSET', state, unpack(flat))
return redis.call('SCARD', members)
