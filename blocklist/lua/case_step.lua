-- case_step.lua: move a case one step along received -> verifying -> upheld | rejected, or
-- transfer it to another agency, with its audit entry, as one step on its number's bucket slot.
-- KEYS[1] the case (hash)   KEYS[2] its complaints (zset)   KEYS[3] its audit (list)
-- KEYS[4] the bucket's case ids (hash)
-- KEYS[5..8] the agency's cases by status in the bucket: received, verifying, upheld, rejected
-- For a transfer, the same keys at the agency it goes to: KEYS[9] case, KEYS[10] complaints,
-- KEYS[11] audit, KEYS[12..15] cases by status.
-- ARGV[1] the case id   ARGV[2] the status it goes to (or 'transferred')   ARGV[3] the note
-- ARGV[4] who (the key's name)   ARGV[5] now (unix seconds)   ARGV[6] the verified company
-- (upheld)   ARGV[7] the agency it goes to (transferred)   ARGV[8] the audit entries a case keeps
-- Returns {'ok', status}, {'absent'} (no such case here: moved or never made),
-- {'illegal', status} (nothing written) or {'occupied'} (the agency it would go to has a
-- case of this number: nothing written).

local NEXT = {received = {verifying = true, rejected = true, transferred = true},
              verifying = {upheld = true, rejected = true, transferred = true}}
local SLOT = {received = 5, verifying = 6, upheld = 7, rejected = 8}
local case_id, to, note, actor, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])

local function audit(entry)
  redis.call('RPUSH', KEYS[3], cjson.encode(entry))
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[8]), -1)
end

if redis.call('HGET', KEYS[1], 'id') ~= case_id then
  return {'absent'}
end
local from = redis.call('HGET', KEYS[1], 's')
if not (NEXT[from] and NEXT[from][to]) then
  return {'illegal', from}
end
if to == 'transferred' and redis.call('EXISTS', KEYS[9]) == 1 then
  return {'occupied'}
end
redis.call('ZREM', KEYS[SLOT[from]], case_id)

if to == 'transferred' then
  local agency = redis.call('HGET', KEYS[1], 'a')
  local number = redis.call('HGET', KEYS[1], 'n')
  audit({at = now, actor = actor, from = from, to = 'received', note = note, from_agency = agency,
         to_agency = ARGV[7]})
  redis.call('HSET', KEYS[1], 'a', ARGV[7], 's', 'received', 'l', now)
  redis.call('RENAME', KEYS[1], KEYS[9])
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('RENAME', KEYS[2], KEYS[10])
  end
  redis.call('RENAME', KEYS[3], KEYS[11])
  redis.call('HSET', KEYS[4], case_id, ARGV[7] .. '|' .. number)
  redis.call('ZADD', KEYS[12], now, case_id)  -- received, at the agency it went to
  return {'ok', 'received'}
end

audit({at = now, actor = actor, from = from, to = to, note = note})
redis.call('HSET', KEYS[1], 's', to, 'l', now)
if to == 'upheld' then
  redis.call('HSET', KEYS[1], 'vc', ARGV[6], 'u', now)
end
redis.call('ZADD', KEYS[SLOT[to]], now, case_id)
return {'ok', to}
