-- report.lua: one device's vote on one number, as one atomic step.
-- KEYS[1] number hash       KEYS[2] the bucket's change stream  KEYS[3] the bucket's decay
-- schedule (zset)           KEYS[4] this report_id's idempotency record
-- KEYS[5] the bucket's stream of report details kept for regulators
-- KEYS[6] the bucket's prefix index set for this number (private lookup by hash prefix)
-- ARGV[1]  mode: vote | withdraw | eval (re-evaluate only: the decay sweep)
--          | override (ARGV[10]: 1 allow, 2 block, '' clear) | dispute (ARGV[10]: 1 open, '' closed)
-- ARGV[2]  the number, E.164      ARGV[3]  now, seconds since the decay epoch
-- ARGV[4]  unix time of now       ARGV[5]  oldest stream id to keep (retention)
-- ARGV[6]  voter field (8 chars)  ARGV[7]  tag index
-- ARGV[8]  report_id record lifetime in seconds, 0 without a report_id
-- ARGV[9]  report details (JSON) to keep, or '' for none
-- ARGV[10] the override or dispute flag    ARGV[11] the number's digits, its prefix-index member
-- (HALF_LIFE, BLOCK_MIN, BLOCK_SCORE, KINDS and NTAGS are set by the header CallMark
-- prepends from its settings; see blocklist/store.py.)
-- Returns {outcome, verdict code, label index, changed (0/1)}; outcome is one of
-- new | retag | duplicate | replay | withdrawn | absent | evaluated | override | dispute.

local key, stream, schedule, rid, details_stream, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local mode, number = ARGV[1], ARGV[2]
local now, unix_now, min_id = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local voter, tag, rid_ttl, details = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local flag, digits = ARGV[10], ARGV[11]

local reporters, scores, fields = read_state(key, voter)
local old_state = tonumber(fields.v or '0')
if rid_ttl > 0 and redis.call('EXISTS', rid) == 1 then
  return {'replay', math.floor(old_state / 64), old_state % 64 - 1, 0}
end

local updates = {}  -- field, value pairs written by one HSET at the end

local function set(name, value)
  updates[#updates + 1] = name
  updates[#updates + 1] = value
end

local function add_evidence(i, delta_reporters, delta_score)
  reporters[i] = reporters[i] + delta_reporters
  if reporters[i] <= 0 then
    reporters[i], scores[i] = 0, 0
    redis.call('HDEL', key, 'r' .. i, 's' .. i)
  else
    set('r' .. i, reporters[i])
    scores[i] = tonumber(redis.call('HINCRBYFLOAT', key, 's' .. i, string.format('%.0f', delta_score)))
  end
end

local outcome = 'evaluated'
local previous = tonumber(fields.vote)
if mode == 'vote' then
  if previous and previous % 32 == tag then
    outcome = 'duplicate'
  else
    outcome = 'new'
    if previous then
      add_evidence(previous % 32, -1, -contribution(previous))
      outcome = 'retag'
    end
    local vote = math.floor(now / 60) * 32 + tag
    add_evidence(tag, 1, contribution(vote))
    set(voter, vote)
    -- f and l are the earliest and latest report times: imports may arrive out of order.
    local first = tonumber(fields.f)
    local last = tonumber(fields.l) or first
    if not first then
      set('f', now)
    elseif now < first then
      set('f', now)
      set('l', last)
    elseif now > last then
      set('l', now)
    end
    if details ~= '' then
      redis.call('XADD', details_stream, 'MINID', '~', min_id, '*', 'n', number, 't', tag, 'd', details)
    end
  end
elseif mode == 'override' or mode == 'dispute' then
  local name = 'o'
  if mode == 'dispute' then name = 'd' end
  if flag == '' then
    redis.call('HDEL', key, name)
    fields[name] = nil
  else
    set(name, flag)
    fields[name] = flag
  end
  outcome = mode
elseif mode == 'withdraw' then
  if previous then
    add_evidence(previous % 32, -1, -contribution(previous))
    redis.call('HDEL', key, voter)
    outcome = 'withdrawn'
  else
    outcome = 'absent'
  end
end

local verdict, label, total, score, ends = evaluate(reporters, scores, now, fields)
local state = verdict * 64 + label + 1
if total == 0 and not fields.o and not fields.d then
  redis.call('DEL', key)
else
  if state ~= old_state then
    set('v', state)
  end
  if #updates > 0 then
    redis.call('HSET', key, unpack(updates))
  end
end
local changed = 0
if state ~= old_state then
  changed = 1
  if old_state == 0 then
    redis.call('SADD', index, digits)
  elseif state == 0 then
    redis.call('SREM', index, digits)
  end
  local label_field = ''
  if label >= 0 then label_field = tostring(label) end
  redis.call('XADD', stream, 'MINID', '~', min_id, '*',
    'n', number, 'v', verdict, 'l', label_field, 'r', total, 's', fmt_score(score), 't', unix_now)
end
if ends then
  redis.call('ZADD', schedule, ends, number)
elseif old_state >= 3 * 64 then  -- only a number that was blocked can be on the schedule
  redis.call('ZREM', schedule, number)
end
if rid_ttl > 0 then
  redis.call('SET', rid, '1', 'EX', rid_ttl)
end
return {outcome, verdict, label, changed}
