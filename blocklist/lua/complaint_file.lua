-- complaint_file.lua: file a complaint in the case of its number at its agency, as one step
-- on the number's bucket slot: the complaint, its case (opened, or reopened after a
-- rejection) and every index change together, or nothing.
-- KEYS[1] the complaint (hash)            KEYS[2] the bucket's complaints by receipt (zset)
-- KEYS[3] the case of (agency, number)    KEYS[4] its complaints (zset)   KEYS[5] its audit (list)
-- KEYS[6] the bucket's case ids (hash)    KEYS[7..10] the agency's cases by status in the bucket:
--         received, verifying, upheld, rejected (zsets)
-- ARGV[1] the complaint id   ARGV[2] now (unix seconds)   ARGV[3] the id a new case takes
-- ARGV[4] the agency   ARGV[5] the number   ARGV[6] the tag   ARGV[7] the company ('' none)
-- ARGV[8] 1 when the complaint is a Do-Not-Call violation   ARGV[9] the audit entries a case keeps
-- ARGV[10..] the complaint's own fields, as field, value pairs
-- Returns {'filed', case id, case status, 1 when the case was opened} or {'exists', case id} (a complaint of this id was
-- filed before: nothing written).

local STATUSES = {received = 7, verifying = 8, upheld = 9, rejected = 10}
local now = tonumber(ARGV[2])

local function audit(from, to, note)
  redis.call('RPUSH', KEYS[5], cjson.encode({at = now, actor = '', from = from, to = to, note = note}))
  redis.call('LTRIM', KEYS[5], -tonumber(ARGV[9]), -1)
end

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists', redis.call('HGET', KEYS[1], 'k')}
end

local case_id = redis.call('HGET', KEYS[3], 'id')
local status, opened = nil, 0
if not case_id then
  case_id, status, opened = ARGV[3], 'received', 1
  redis.call('HSET', KEYS[3], 'id', case_id, 'n', ARGV[5], 'a', ARGV[4], 's', status, 'c', 0, 'v', 0,
             'f', now, 'l', now)
  redis.call('HSET', KEYS[6], case_id, ARGV[4] .. '|' .. ARGV[5])
  audit('', status, 'opened by a complaint')
else
  status = redis.call('HGET', KEYS[3], 's')
  if status == 'rejected' then
    redis.call('ZREM', KEYS[STATUSES.rejected], case_id)
    status = 'received'
    redis.call('HSET', KEYS[3], 's', status)
    audit('rejected', status, 'reopened by a new complaint')
  end
end

redis.call('HINCRBY', KEYS[3], 'c', 1)
redis.call('HINCRBY', KEYS[3], 't:' .. ARGV[6], 1)
if ARGV[7] ~= '' then
  redis.call('HINCRBY', KEYS[3], 'co:' .. ARGV[7], 1)
end
if ARGV[8] == '1' then
  redis.call('HINCRBY', KEYS[3], 'v', 1)
end
redis.call('HSET', KEYS[3], 'l', now, 'lc', now)  -- last activity, last complaint

local fields = {}
for i = 10, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], 'k', case_id, unpack(fields))
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZADD', KEYS[4], now, ARGV[1])
redis.call('ZADD', KEYS[STATUSES[status]], now, case_id)
return {'filed', case_id, status, opened}
