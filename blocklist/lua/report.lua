-- report.lua: one device's vote on one number, as one atomic step.
-- KEYS[1] number hash       KEYS[2] the bucket's change stream  KEYS[3] the bucket's decay
-- schedule (zset)           KEYS[4] this report_id's idempotency record
-- KEYS[5] the bucket's stream of report details kept for regulators
-- ARGV[1]  mode: vote | withdraw | eval (re-evaluate only: the decay sweep)
-- ARGV[2]  the number, E.164      ARGV[3]  now, seconds since the decay epoch
-- ARGV[4]  unix time of now       ARGV[5]  oldest stream id to keep (retention)
-- ARGV[6]  voter field (8 chars)  ARGV[7]  tag index
-- ARGV[8]  report_id record lifetime in seconds, 0 without a report_id
-- ARGV[9]  report details (JSON) to keep, or '' for none
-- (HALF_LIFE, BLOCK_MIN, BLOCK_SCORE, KINDS and NTAGS are set by the header CallMark
-- prepends from its settings; see blocklist/reputation.py.)
-- Returns {outcome, verdict code, label index, changed (0/1)}; outcome is one of
-- new | retag | duplicate | replay | withdrawn | absent | evaluated.

local key, stream, schedule, rid, details_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local mode, number = ARGV[1], ARGV[2]
local now, unix_now, min_id = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local voter, tag, rid_ttl, details = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]

local old_state = tonumber(redis.call('HGET', key, 'v') or '0')
if rid_ttl > 0 then
  local seen = redis.call('GET', rid)
  if seen then
    return {'replay', math.floor(old_state / 64), old_state % 64 - 1, 0}
  end
end

local function unvote(vote)
  local old_tag = vote % 32
  local left = redis.call('HINCRBY', key, 'r' .. old_tag, -1)
  if left <= 0 then
    redis.call('HDEL', key, 'r' .. old_tag, 's' .. old_tag)
  else
    redis.call('HINCRBYFLOAT', key, 's' .. old_tag, string.format('%.0f', -contribution(vote)))
  end
end

local outcome = 'evaluated'
if mode == 'vote' then
  local previous = tonumber(redis.call('HGET', key, voter))
  if previous and previous % 32 == tag then
    outcome = 'duplicate'
  else
    if previous then
      unvote(previous)
      outcome = 'retag'
    else
      outcome = 'new'
    end
    local vote = math.floor(now / 60) * 32 + tag
    redis.call('HSET', key, voter, vote)
    redis.call('HINCRBY', key, 'r' .. tag, 1)
    redis.call('HINCRBYFLOAT', key, 's' .. tag, string.format('%.0f', contribution(vote)))
    local first = redis.call('HGET', key, 'f')
    if not first then
      redis.call('HSET', key, 'f', now)
    elseif tonumber(first) ~= now then
      redis.call('HSET', key, 'l', now)
    end
    if details ~= '' then
      redis.call('XADD', details_stream, 'MINID', '~', min_id, '*', 'n', number, 't', tag, 'd', details)
    end
  end
elseif mode == 'withdraw' then
  local previous = tonumber(redis.call('HGET', key, voter))
  if previous then
    unvote(previous)
    redis.call('HDEL', key, voter)
    outcome = 'withdrawn'
  else
    outcome = 'absent'
  end
end

local reporters, scores = read_counters(key)
local verdict, label, total, score, ends = evaluate(reporters, scores, now)
local state = verdict * 64 + label + 1
if total == 0 then
  redis.call('DEL', key)
elseif state ~= old_state then
  redis.call('HSET', key, 'v', state)
end
local changed = 0
if state ~= old_state then
  changed = 1
  local label_field = ''
  if label >= 0 then label_field = tostring(label) end
  redis.call('XADD', stream, 'MINID', '~', min_id, '*',
    'n', number, 'v', verdict, 'l', label_field, 'r', total, 's', fmt_score(score), 't', unix_now)
end
if ends then
  redis.call('ZADD', schedule, ends, number)
else
  redis.call('ZREM', schedule, number)
end
if rid_ttl > 0 and outcome ~= 'duplicate' then
  redis.call('SET', rid, '1', 'EX', rid_ttl)
end
return {outcome, verdict, label, changed}
