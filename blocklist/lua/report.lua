-- report.lua: one vote on one number, or one change of its state, as one atomic step.
-- KEYS[1] number hash       KEYS[2] the bucket's change stream  KEYS[3] the bucket's decay
-- schedule (zset)           KEYS[4] this report_id's idempotency record
-- KEYS[5] the bucket's stream of report details kept for regulators
-- KEYS[6] the bucket's prefix index set for this number (private lookup by hash prefix)
-- KEYS[7] the bucket's set of numbers the burst guard holds
-- KEYS[8] the HyperLogLog of devices that had a conversation with the number
-- KEYS[9] the bucket's statistics of the vote's day (reports, per tag)
-- KEYS[10] the bucket's most reported numbers (zset: number -> reporters, from TOP_MIN on)
-- ARGV[1]  mode: vote | withdraw | reweigh (the voter's vote, at weight ARGV[12]) | eval
--          (re-evaluate only: the decay sweep) | override (ARGV[10]: 1 allow, 2 block, ''
--          clear) | dispute (ARGV[10]: 1 open, '' closed) | release (end a burst hold)
-- ARGV[2]  the number, E.164      ARGV[3]  now, seconds since the decay epoch
-- ARGV[4]  unix time of now       ARGV[5]  oldest stream id to keep (retention)
-- ARGV[6]  voter field (8 chars)  ARGV[7]  tag index
-- ARGV[8]  report_id record lifetime in seconds, 0 without a report_id
-- ARGV[9]  report details (JSON) to keep, or '' for none
-- ARGV[10] the override or dispute flag    ARGV[11] the number's digits, its prefix-index member
-- ARGV[12] the voter's weight, percent     ARGV[13] the voter's network (16 bits, 0 = none)
-- ARGV[14] 1 when the voter is a fresh device the burst guard watches, else 0
-- (HALF_LIFE, BLOCK_MIN, BLOCK_SCORE, KINDS, NTAGS, BURST_MIN, BURST_WINDOW, TALK_SHARE,
-- TALK_CAP, STATS_DAYS and TOP_MIN are set by the header CallMark prepends from its
-- settings and constants; see blocklist/store.py.)
-- Returns {outcome, verdict code, label index, changed (0/1)}; outcome is one of
-- new | retag | duplicate | replay | withdrawn | absent | reweighed | evaluated | override
-- | dispute | release.

local key, stream, schedule, rid, details_stream, index, held =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local mode, number = ARGV[1], ARGV[2]
local now, unix_now, min_id = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local voter, tag, rid_ttl, details = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local flag, digits = ARGV[10], ARGV[11]
local weight, net, fresh = tonumber(ARGV[12]), tonumber(ARGV[13]), ARGV[14] == '1'

local reporters, scores, fields = read_state(key, voter)
fields.talkers_key = KEYS[8]
local old_state = tonumber(fields.v or '0')
if rid_ttl > 0 and redis.call('EXISTS', rid) == 1 then
  return {'replay', math.floor(old_state / 64), old_state % 64 - 1, 0}
end

local written = {}  -- field -> new value, or false to delete it: one HSET and one HDEL at the end

local function set(name, value)
  written[name] = value
  fields[name] = value
end

local function unset(name)
  written[name] = false
  fields[name] = nil
end

local function add_evidence(i, delta_reporters, delta_score)
  reporters[i] = reporters[i] + delta_reporters
  if reporters[i] <= 0 then
    reporters[i], scores[i] = 0, 0
    written['r' .. i] = nil
    redis.call('HDEL', key, 'r' .. i, 's' .. i)
  else
    set('r' .. i, reporters[i])
    scores[i] = tonumber(redis.call('HINCRBYFLOAT', key, 's' .. i, string.format('%.0f', delta_score)))
  end
end

local function count(name, delta)
  local value = (tonumber(fields[name]) or 0) + delta
  if value == 0 then unset(name) else set(name, value) end
end

-- A vote's whole effect: its evidence and, for a spam vote, its network's count.
local function apply(vote, sign)
  local _, vote_tag, _, vote_net = unpack_vote(vote)
  add_evidence(vote_tag, sign, sign * contribution(vote, voter))
  if vote_net > 0 and string.byte(KINDS, vote_tag + 1) == 115 then
    local name = 'n' .. string.format('%04x', vote_net)
    local same = redis.call('HINCRBY', key, name, sign)
    count('k', sign)
    if same == 0 then
      redis.call('HDEL', key, name)
      count('m', -1)
    elseif same == 1 and sign == 1 then
      count('m', 1)
    end
  end
end

-- The burst guard: many spam tags from fresh devices within BURST_WINDOW minutes hold
-- the number at warn until an operator releases it.
local function watch_burst(minute)
  local start, tags_in = tonumber(fields.w), tonumber(fields.b) or 0
  if not start or minute - start >= BURST_WINDOW then
    start, tags_in = minute, 0
    set('w', start)
  end
  set('b', tags_in + 1)
  if tags_in + 1 >= BURST_MIN and not fields.h then
    set('h', 1)
    redis.call('SADD', held, number)
  end
end

local outcome = 'evaluated'
local previous = tonumber(fields.vote)
if mode == 'vote' then
  if previous and select(2, unpack_vote(previous)) == tag then
    outcome = 'duplicate'
  else
    outcome = 'new'
    if previous then
      apply(previous, -1)
      outcome = 'retag'
    end
    local minute = math.floor(now / 60)
    local vote = pack_vote(minute, tag, weight, net)
    redis.call('HINCRBY', KEYS[9], 'n', 1)
    redis.call('HINCRBY', KEYS[9], 't' .. tag, 1)
    redis.call('EXPIRE', KEYS[9], STATS_DAYS * 86400)
    apply(vote, 1)
    set(voter, string.format('%.0f', vote))
    if voter == DETECTOR then set('a', 1) end
    -- a device's first tag of the number feeds the burst guard; changing it does not
    if fresh and not previous and string.byte(KINDS, tag + 1) == 115 then watch_burst(minute) end
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
elseif mode == 'reweigh' then
  outcome = 'absent'
  if previous then
    local minute, vote_tag, old_weight, vote_net = unpack_vote(previous)
    outcome = 'duplicate'
    if old_weight ~= weight then
      apply(previous, -1)
      local vote = pack_vote(minute, vote_tag, weight, vote_net)
      apply(vote, 1)
      set(voter, string.format('%.0f', vote))
      outcome = 'reweighed'
    end
  end
elseif mode == 'override' or mode == 'dispute' then
  local name = 'o'
  if mode == 'dispute' then name = 'd' end
  if flag == '' then unset(name) else set(name, flag) end
  outcome = mode
elseif mode == 'release' then
  if fields.h then
    unset('h')
    unset('b')
    unset('w')
    redis.call('SREM', held, number)
  end
  outcome = mode
elseif mode == 'withdraw' then
  if previous then
    apply(previous, -1)
    redis.call('HDEL', key, voter)
    if voter == DETECTOR then unset('a') end
    outcome = 'withdrawn'
  else
    outcome = 'absent'
  end
end

local verdict, label, total, score, ends = evaluate(reporters, scores, now, fields)
if total >= TOP_MIN then
  redis.call('ZADD', KEYS[10], total, number)
elseif mode == 'withdraw' then
  redis.call('ZREM', KEYS[10], number)
end
local state = verdict * 64 + label + 1
if total == 0 and not fields.o and not fields.d then
  redis.call('DEL', key)
  if fields.h then redis.call('SREM', held, number) end
else
  if state ~= old_state then
    set('v', state)
  end
  local updates, deletes = {}, {}
  for name, value in pairs(written) do
    if value == false then
      deletes[#deletes + 1] = name
    else
      updates[#updates + 1] = name
      updates[#updates + 1] = value
    end
  end
  if #deletes > 0 then
    redis.call('HDEL', key, unpack(deletes))
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
