-- moderation.lua: one moderation step on one number, with its records, as one atomic step:
-- open a dispute, resolve one, set or clear an override, release a burst hold. Everything
-- it touches lives on the number's bucket slot.
-- KEYS[1] number hash               KEYS[2] the bucket's change stream
-- KEYS[3] the bucket's decay schedule (zset: number -> unix second its verdict may change)
-- KEYS[4] the bucket's prefix index set for this number
-- KEYS[5] the bucket's set of numbers the burst guard holds
-- KEYS[6] the HyperLogLog of devices that had a conversation with the number
-- KEYS[7] the bucket's audit stream  KEYS[8] the bucket's open disputes (zset: id -> opened at)
-- KEYS[9] the number's open dispute (string: its id)
-- KEYS[10] the dispute (hash; open and resolve only, else the number hash again, untouched)
-- ARGV[1]  step: open | resolve | override (ARGV[9]: allow, block, '' clears) | release
-- ARGV[2]  the number, E.164      ARGV[3]  now, unix seconds
-- ARGV[4]  oldest change-stream id to keep (retention)
-- ARGV[5]  the number's digits, its prefix-index member
-- ARGV[6]  audit entries the bucket keeps (approximately: the oldest go first)
-- ARGV[7]  who acts: the API key's name (open: '')
-- ARGV[8]  why: the audit reason (override, release), the note (resolve), the owner's reason (open)
-- ARGV[9]  verdict: allow | block | '' (resolve: the override the resolution sets, '' none)
-- ARGV[10] the dispute id (open, resolve)  ARGV[11] the owner's contact (open)
-- (The generated header and verdict.lua are prepended as for report.lua; see blocklist/store.py.)
-- Returns {outcome, detail}: opened | resolved | override | release, or, writing nothing,
-- conflict (detail: the open dispute's id) | absent (no such dispute of this number)
-- | closed (detail: the dispute's status) | not_held (a release of a number not held).
-- The number's flags (d open dispute, o override, h hold) change here directly, and the
-- verdict is re-evaluated and published as report.lua publishes it after a vote. Retiring
-- old votes stays with report.lua and the decay sweep.

local key, stream, schedule, index, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local audit, open_disputes, pointer, dispute = KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local step, number, now, min_id, digits = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local audit_keep, actor, reason, verdict_name = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local dispute_id, contact = ARGV[10], ARGV[11]
local OVERRIDE_FLAGS = {allow = OVERRIDE_ALLOW, block = OVERRIDE_BLOCK}

-- Every check comes before the first write: a refused step writes nothing.
if verdict_name ~= '' and not OVERRIDE_FLAGS[verdict_name] then
  return redis.error_reply('moderation.lua: verdict must be allow, block or empty')
end
if step == 'open' then
  local existing = redis.call('GET', pointer)
  if existing then return {'conflict', existing} end
elseif step == 'resolve' then
  local record = redis.call('HMGET', dispute, 'number', 'status')
  if record[1] ~= number then return {'absent', ''} end
  if record[2] ~= 'open' then return {'closed', record[2] or ''} end
elseif step == 'release' then
  if redis.call('HEXISTS', key, 'h') == 0 then return {'not_held', ''} end
elseif step ~= 'override' then
  return redis.error_reply('moderation.lua: unknown step ' .. step)
end

local reporters, scores, fields = read_number(key, '')
fields.talkers_key = KEYS[6]
local old_state = tonumber(fields.v or '0')
local written, set, unset = pending_writes(fields)

-- An audit entry's id carries the server's microseconds within the millisecond, so listings
-- merged over the buckets keep the order of steps even when they come fast.
local function audit_id()
  local time = redis.call('TIME')
  local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local seq = tonumber(time[2]) % 1000
  local last = redis.call('XREVRANGE', audit, '+', '-', 'COUNT', 1)[1]
  if last then
    local last_ms, last_seq = string.match(last[1], '^(%d+)-(%d+)$')
    last_ms, last_seq = tonumber(last_ms), tonumber(last_seq)
    if last_ms > ms or (last_ms == ms and last_seq >= seq) then
      ms, seq = last_ms, last_seq + 1
    end
  end
  return string.format('%.0f-%.0f', ms, seq)
end

local function audit_entry(action, why, ...)
  redis.call('XADD', audit, 'MAXLEN', '~', audit_keep, audit_id(), 'action', action, 'number', number,
    'by', actor, 'reason', why, 'at', string.format('%d', now), ...)
end

local outcome = step
if step == 'open' then
  redis.call('SET', pointer, dispute_id)
  redis.call('HSET', dispute, 'number', number, 'reason', reason, 'contact', contact, 'status', 'open',
    'opened_at', string.format('%d', now))
  redis.call('ZADD', open_disputes, now, dispute_id)
  set('d', 1)
  outcome = 'opened'
elseif step == 'resolve' then
  if verdict_name ~= '' then
    set('o', OVERRIDE_FLAGS[verdict_name])
    audit_entry('override', 'dispute ' .. dispute_id .. ': ' .. reason, 'verdict', verdict_name)
  end
  audit_entry('dispute_resolved', reason, 'dispute_id', dispute_id, 'override', verdict_name)
  redis.call('HSET', dispute, 'status', 'resolved', 'resolution', reason, 'override', verdict_name,
    'resolved_at', string.format('%d', now))
  redis.call('ZREM', open_disputes, dispute_id)
  if redis.call('GET', pointer) == dispute_id then redis.call('DEL', pointer) end
  if fields.d then unset('d') end
  outcome = 'resolved'
elseif step == 'override' then
  if verdict_name == '' then
    if fields.o then unset('o') end
    audit_entry('override_cleared', reason, 'verdict', '')
  else
    set('o', OVERRIDE_FLAGS[verdict_name])
    audit_entry('override', reason, 'verdict', verdict_name)
  end
else  -- release
  if fields.h then
    unset('h')
    unset('b')
    unset('w')
    redis.call('SREM', held, number)
  end
  audit_entry('hold_released', reason)
end

-- The number's new state, published as report.lua publishes it.
publish({key = key, stream = stream, schedule = schedule, index = index, held = held, number = number,
         digits = digits, now = now, min_id = min_id}, reporters, scores, fields, written, old_state)
return {outcome, dispute_id}
