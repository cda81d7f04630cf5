-- report.lua: one vote on one number, or one change of its state, as one atomic step.
-- KEYS[1] number hash       KEYS[2] the bucket's change stream  KEYS[3] the bucket's decay
-- schedule (zset: number -> unix second its verdict may change by time alone)
-- KEYS[4] this report_id's idempotency record
-- KEYS[5] the bucket's stream of report details kept for regulators
-- KEYS[6] the bucket's prefix index set for this number (private lookup by hash prefix)
-- KEYS[7] the bucket's set of numbers the burst guard holds
-- KEYS[8] the HyperLogLog of devices that had a conversation with the number
-- KEYS[9] the bucket's statistics of the vote's day (reports, per tag)
-- KEYS[10] the bucket's most reported numbers (zset: number -> reporters, from TOP_MIN on)
-- KEYS[11] the voter's erasure tombstone in this bucket: while it exists, its votes are refused
-- ARGV[1]  mode: vote | redate (a vote that moves the voter's vote to its own time even with
--          the same tag: an import dated anew) | withdraw | reweigh (the voter's vote, at weight
--          ARGV[11] and rank ARGV[13]) | eval (re-evaluate only: the decay sweep). Overrides,
--          disputes and the release of holds are lua/moderation.lua's.
-- ARGV[2]  the number, E.164      ARGV[3]  now, unix seconds
-- ARGV[4]  the vote's time, unix seconds (a report's own time; imports are dated in the past)
-- ARGV[5]  oldest stream id to keep (retention)
-- ARGV[6]  voter field (8 chars)  ARGV[7]  tag index
-- ARGV[8]  report_id record lifetime in seconds, 0 without a report_id
-- ARGV[9]  report details (JSON) to keep, or '' for none
-- ARGV[10] the number's digits, its prefix-index member
-- ARGV[11] the voter's weight, percent     ARGV[12] the voter's network (16 bits, 0 = none)
-- ARGV[13] the voter's rank: 0 fresh, 1 aged, 2 standing (see verdict.lua)
-- ARGV[14] 1 when the voter is a fresh device the burst guard watches (for the detector:
--          when fresh devices made it vote), else 0
-- (HALF_LIFE, BLOCK_MIN, BLOCK_SCORE, KINDS, NTAGS, BURST_MIN, BURST_WINDOW, TALK_SHARE,
-- TALK_CAP, STATS_DAYS, TOP_MIN, CREDIT_FRESH, CREDIT_AGED, LIVE_HOURS, RETIRE_SLACK_HOURS,
-- REBASE_HOURS and DETAILS_RETAG_HOURS are set by the header CallMark prepends from its
-- settings and constants; see blocklist/store.py.)
-- Returns {outcome, verdict code, label index, changed (0/1)}; outcome is one of
-- new | retag | redated | duplicate | replay | withdrawn | absent | reweighed | evaluated | erased.

local key, stream, schedule, rid, details_stream, index, held =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local mode, number = ARGV[1], ARGV[2]
local now, at, min_id = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local voter, tag, rid_ttl, details = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local digits = ARGV[10]
local weight, net, class, fresh = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]), ARGV[14] == '1'
local now_hour = math.floor(now / HOUR)

local reporters, scores, fields, votes = read_number(key, voter)
fields.talkers_key = KEYS[8]
local old_state = tonumber(fields.v or '0')
if rid_ttl > 0 and redis.call('EXISTS', rid) == 1 then
  return {'replay', math.floor(old_state / 64), old_state % 64 - 1, 0}
end
if (mode == 'vote' or mode == 'redate' or mode == 'reweigh') and voter ~= '' and redis.call('EXISTS', KEYS[11]) == 1 then
  return {'erased', math.floor(old_state / 64), old_state % 64 - 1, 0}
end

local written, set, unset = pending_writes(fields)

local function count(name, delta)
  local value = (tonumber(fields[name]) or 0) + delta
  if value == 0 then unset(name) else set(name, value) end
end

local epoch = tonumber(fields.e)  -- nil until the first vote

-- Moves the number's epoch forward to `hour`, rescaling every score to it.
local function rebase(hour)
  local factor = 2 ^ ((epoch - hour) * HOUR / HALF_LIFE)
  for i = 0, NTAGS - 1 do
    if scores[i] ~= 0 then
      scores[i] = math.floor(scores[i] * factor + 0.5)
      set('s' .. i, string.format('%.0f', scores[i]))
    end
  end
  epoch = hour
  set('e', hour)
end

local function add_evidence(i, delta_reporters, delta_score)
  reporters[i] = reporters[i] + delta_reporters
  if reporters[i] <= 0 then
    reporters[i], scores[i] = 0, 0
    unset('r' .. i)
    unset('s' .. i)
  else
    set('r' .. i, reporters[i])
    scores[i] = math.max(0, scores[i] + delta_score)  -- rounding after a rebase can leave a residue
    set('s' .. i, string.format('%.0f', scores[i]))
  end
end

-- A vote's whole effect: its evidence and, for a spam vote, its credit toward a block.
local function apply(vote, voter_name, sign)
  local hour, vote_tag, vote_weight, vote_net, vote_class = unpack_vote(vote)
  if not counted(vote_weight, vote_class) then
    count('z', sign)
    return
  end
  add_evidence(vote_tag, sign, sign * contribution(vote, voter_name, epoch or now_hour))
  if sign > 0 and hour + LIVE_HOURS < (tonumber(fields.x) or math.huge) then set('x', hour + LIVE_HOURS) end
  if not is_spam(vote_tag) then return end
  local credit = CREDITS[vote_class]
  if voter_name == DETECTOR then credit = NEEDED end
  if vote_net > 0 then
    local name = 'n' .. string.format('%04x', vote_net)
    local after = redis.call('HINCRBY', key, name, sign * CLASS_UNIT[vote_class])
    credit = network_credit(after) - network_credit(after - sign * CLASS_UNIT[vote_class])
    if after == 0 then redis.call('HDEL', key, name) end
    count('c', credit)
  else
    count('c', sign * credit)
  end
end

-- The class a vote is stored with: RETIRED when it is already too old to count.
local function class_at(hour, vote_class)
  if hour + LIVE_HOURS <= now_hour then return RETIRED end
  return vote_class
end

-- Retires every counted vote within a day of LIVE_HOURS old: it stops counting, and the
-- next retirement is due when the oldest counted vote that is left turns that old.
local function retire_due()
  local x = tonumber(fields.x)
  if not x or x > now_hour + RETIRE_SLACK_HOURS then return end
  local all = votes or redis.call('HGETALL', key)
  local next_due = nil
  for j = 1, #all, 2 do
    local name = all[j]
    if #name >= 6 then
      local vote = written[name]
      if vote == nil then vote = all[j + 1] end
      vote = tonumber(vote)  -- false (withdrawn in this call) becomes nil
      local hour, vote_tag, vote_weight, vote_net, vote_class = 0, 0, 0, 0, RETIRED
      if vote then hour, vote_tag, vote_weight, vote_net, vote_class = unpack_vote(vote) end
      if counted(vote_weight, vote_class) then
        if hour + LIVE_HOURS <= now_hour + RETIRE_SLACK_HOURS then
          apply(vote, name, -1)
          local retired = pack_vote(hour, vote_tag, vote_weight, vote_net, RETIRED)
          apply(retired, name, 1)
          set(name, string.format('%.0f', retired))
          if name == voter then fields.vote = string.format('%.0f', retired) end
        elseif not next_due or hour + LIVE_HOURS < next_due then
          next_due = hour + LIVE_HOURS
        end
      end
    end
  end
  if next_due then set('x', next_due) else unset('x') end
end

local outcome = 'evaluated'
local previous = tonumber(fields.vote)
local vote_hour = math.floor(at / HOUR)
if mode == 'vote' or mode == 'redate' then
  if mode == 'vote' and previous and select(2, unpack_vote(previous)) == tag then
    outcome = 'duplicate'
  else
    if not epoch then
      epoch = vote_hour
      set('e', epoch)
    elseif vote_hour - epoch > REBASE_HOURS then
      rebase(vote_hour)
    end
    outcome = 'new'
    local was_spam, previous_hour, previous_counted = false, nil, false
    if previous then
      local p_hour, p_tag, p_weight, _, p_class = unpack_vote(previous)
      previous_counted = counted(p_weight, p_class)
      was_spam = is_spam(p_tag) and previous_counted
      previous_hour = p_hour
      apply(previous, voter, -1)
      outcome = 'retag'
      if mode == 'redate' then outcome = 'redated' end
    end
    local vote = pack_vote(vote_hour, tag, weight, net, class_at(vote_hour, class))
    local live = counted(weight, class_at(vote_hour, class))
    -- Statistics count a device's vote on a number once: a retag moves no figure, nor does
    -- re-dating a vote that was counted already.
    if live and (outcome == 'new' or (outcome == 'redated' and not previous_counted)) then
      redis.call('HINCRBY', KEYS[9], 'n', 1)
      redis.call('HINCRBY', KEYS[9], 't' .. tag, 1)
      redis.call('EXPIRE', KEYS[9], STATS_DAYS * 86400)
    end
    apply(vote, voter, 1)
    set(voter, string.format('%.0f', vote))
    if voter == DETECTOR then
      set('a', 1)
    elseif fresh and live and is_spam(tag) and not was_spam then
      -- Every way spam evidence arrives feeds the burst guard: a first tag and a retag alike.
      local minute = math.floor(now / 60)
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
    -- f and l are the earliest and latest report times: imports may arrive out of order.
    local first = tonumber(fields.f)
    local last = tonumber(fields.l) or first
    if not first then
      set('f', at)
    elseif at < first then
      set('f', at)
      set('l', last)
    elseif at > last then
      set('l', at)
    end
    -- A device's churn on one number keeps bounded details: a retag within a day keeps none.
    if details ~= '' and (not previous_hour or vote_hour - previous_hour >= DETAILS_RETAG_HOURS) then
      redis.call('XADD', details_stream, 'MINID', '~', min_id, '*', 'n', number, 't', tag, 'd', details)
    end
  end
  if voter == DETECTOR and fresh and not fields.h then
    -- a burst of fresh devices' rings is behind the detector's vote: hold it for review
    set('h', 1)
    redis.call('SADD', held, number)
  end
elseif mode == 'reweigh' then
  outcome = 'absent'
  if previous then
    local hour, vote_tag, old_weight, vote_net, old_class = unpack_vote(previous)
    local new_class = old_class
    if old_class ~= RETIRED then new_class = class end
    outcome = 'duplicate'
    if old_weight ~= weight or old_class ~= new_class then
      apply(previous, voter, -1)
      local vote = pack_vote(hour, vote_tag, weight, vote_net, new_class)
      apply(vote, voter, 1)
      set(voter, string.format('%.0f', vote))
      outcome = 'reweighed'
    end
  end
elseif mode == 'withdraw' then
  if previous then
    apply(previous, voter, -1)
    unset(voter)
    if voter == DETECTOR then unset('a') end
    outcome = 'withdrawn'
  else
    outcome = 'absent'
  end
end

retire_due()

local where = {key = key, stream = stream, schedule = schedule, index = index, held = held, number = number,
               digits = digits, now = now, min_id = min_id}
local verdict, label, total, changed = publish(where, reporters, scores, fields, written, old_state)
if total >= TOP_MIN then
  redis.call('ZADD', KEYS[10], total, number)
elseif mode ~= 'vote' then
  redis.call('ZREM', KEYS[10], number)
end
if rid_ttl > 0 then
  redis.call('SET', rid, '1', 'EX', rid_ttl)
end
return {outcome, verdict, label, changed}
