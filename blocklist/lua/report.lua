-- report.lua: one vote on one number, or one change of its votes, as one atomic step.
-- Each mode is one function below (cast, reweigh, withdraw, re-evaluate); the steps every
-- mode shares (the checks before, retiring old votes and publishing after) come around them.
-- Overrides, disputes and the release of holds are lua/moderation.lua's.
--
-- KEYS[1]  the number's hash
-- KEYS[2]  the bucket's change stream
-- KEYS[3]  the bucket's decay schedule (zset: number -> unix second its verdict may change by time alone)
-- KEYS[4]  this report_id's idempotency record (without a report_id: KEYS[1] again, untouched)
-- KEYS[5]  the bucket's stream of report details kept for regulators
-- KEYS[6]  the bucket's prefix index set for this number (private lookup by hash prefix)
-- KEYS[7]  the bucket's set of numbers the burst guard holds
-- KEYS[8]  the HyperLogLog of devices that had a conversation with the number
-- KEYS[9]  the bucket's statistics of the vote's day (reports, per tag)
-- KEYS[10] the bucket's most reported numbers (zset: number -> reporters, from TOP_MIN on)
-- KEYS[11] the voter's erasure tombstone in this bucket: while it exists, its votes are refused
--          (without a voter: KEYS[1] again, untouched)
--
-- ARGV, in the order of the fields of reputation.ReportArgs (which builds them):
-- ARGV[1]  mode     vote | redate (moves the voter's vote to `at` even with the same tag: an
--                   import dated anew) | withdraw | reweigh | eval (re-evaluate only: the sweep)
-- ARGV[2]  number   E.164
-- ARGV[3]  digits   the number's digits, its prefix-index member
-- ARGV[4]  now      unix seconds
-- ARGV[5]  at       the vote's time, unix seconds (imports are dated in the past); else now
-- ARGV[6]  min_id   oldest stream id to keep (retention)
-- ARGV[7]  voter    voter field (8 characters); '' for eval
-- ARGV[8]  tag      tag index (vote, redate)
-- ARGV[9]  rid_ttl  report_id record lifetime in seconds, 0 without a report_id (vote, redate)
-- ARGV[10] details  report details (JSON) to keep, or '' for none (vote, redate)
-- ARGV[11] weight   the voter's weight, percent (vote, redate, reweigh)
-- ARGV[12] network  the voter's network, 16 bits, 0 = none (vote, redate)
-- ARGV[13] rank     the voter's rank: FRESH, AGED or STANDING (vote, redate, reweigh)
-- ARGV[14] fresh    1 when the voter is a fresh device the burst guard watches (for the
--                   detector: when fresh devices made it vote), else 0 (vote, redate)
-- ARGV[15] violation 1 when the vote is a Do-Not-Call violation (blocklist/violations.py),
--                   else 0 (vote, redate): the vote's g<voter> flag, counted in k while the
--                   vote counts; a vote without it clears the flag, a duplicate with it sets it
--
-- The names in capitals are set by the header CallMark prepends from its settings and
-- constants (blocklist/store.py), before verdict.lua.
-- Returns {outcome, verdict code, label index, changed (0/1), violation (1 when the call
-- flagged a counted vote that was not flagged before: a new violation for the statistics)};
-- outcome is one of
-- new | retag | redated | duplicate | replay | withdrawn | absent | reweighed | evaluated | erased.

local key, stream, schedule, rid, details_stream, index, held =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local talkers, day_stats, most_reported, tombstone = KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local mode, number, digits = ARGV[1], ARGV[2], ARGV[3]
local now, at, min_id = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local voter, tag, rid_ttl, details = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local weight, network, rank, fresh = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]), ARGV[14] == '1'
local violation = ARGV[15] == '1'
local now_hour = math.floor(now / HOUR)
local flag = violation_flag(voter)
local new_violation = 0  -- the reply's last element

local ADDS_VOTE = {vote = true, redate = true, reweigh = true}  -- modes an erased voter may not use

local reporters, scores, fields, votes = read_number(key, voter)
fields.talkers_key = talkers
local old_state = tonumber(fields.v or '0')
if rid_ttl > 0 and redis.call('EXISTS', rid) == 1 then
  local verdict, label = unpack_state(old_state)
  return {'replay', verdict, label, 0, 0}
end
if ADDS_VOTE[mode] and voter ~= '' and redis.call('EXISTS', tombstone) == 1 then
  local verdict, label = unpack_state(old_state)
  return {'erased', verdict, label, 0, 0}
end

local written, set, unset = pending_writes(fields)

local function whole(x)
  return string.format('%.0f', x)
end

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
      set('s' .. i, whole(scores[i]))
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
    set('s' .. i, whole(scores[i]))
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
  if fields[violation_flag(voter_name)] then count('k', sign) end  -- set the flag before applying a vote
  if sign > 0 and hour + LIVE_HOURS < (tonumber(fields.x) or math.huge) then set('x', hour + LIVE_HOURS) end
  if not is_spam(vote_tag) then return end
  local credit = CREDITS[vote_class]
  if voter_name == DETECTOR_VOTER then credit = NEEDED end
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
  local all = votes
  if not all then  -- a big hash: read whole now, its violation flags with it
    all = redis.call('HGETALL', key)
    for j = 1, #all, 2 do
      local name = all[j]
      if is_flag(name) and written[name] == nil then fields[name] = all[j + 1] end
    end
  end
  local next_due = nil
  for j = 1, #all, 2 do
    local name = all[j]
    if #name >= 6 and not is_flag(name) then
      local vote = written[name]
      if vote == nil then vote = all[j + 1] end
      vote = tonumber(vote)  -- false (withdrawn in this call) becomes nil
      local hour, vote_tag, vote_weight, vote_net, vote_class = 0, 0, 0, 0, RETIRED
      if vote then hour, vote_tag, vote_weight, vote_net, vote_class = unpack_vote(vote) end
      if counted(vote_weight, vote_class) then
        if hour + LIVE_HOURS <= now_hour + RETIRE_SLACK_HOURS then
          apply(vote, name, -1)
          if fields[violation_flag(name)] then unset(violation_flag(name)) end  -- retired evidence shows none
          local retired = pack_vote(hour, vote_tag, vote_weight, vote_net, RETIRED)
          apply(retired, name, 1)
          set(name, whole(retired))
          if name == voter then fields.vote = whole(retired) end
        elseif not next_due or hour + LIVE_HOURS < next_due then
          next_due = hour + LIVE_HOURS
        end
      end
    end
  end
  if next_due then set('x', next_due) else unset('x') end
end

local function hold()
  set('h', 1)
  redis.call('SADD', held, number)
end

-- Every way spam evidence from a fresh device arrives feeds the burst guard: a first tag
-- and a retag alike. BURST_MIN such tags within BURST_WINDOW minutes hold the number.
local function feed_burst_guard()
  local minute = math.floor(now / 60)
  local start, tags_in = tonumber(fields.w), tonumber(fields.b) or 0
  if not start or minute - start >= BURST_WINDOW then
    start, tags_in = minute, 0
    set('w', start)
  end
  set('b', tags_in + 1)
  if tags_in + 1 >= BURST_MIN and not fields.h then hold() end
end

-- f and l are the earliest and latest report times: imports may arrive out of order.
local function note_report_time()
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
end

-- The voter's vote becomes `tag` at `at`, replacing its `previous` one if any.
-- Returns new, retag or redated.
local function place_vote(previous)
  local vote_hour = math.floor(at / HOUR)
  if not epoch then
    epoch = vote_hour
    set('e', epoch)
  elseif vote_hour - epoch > REBASE_HOURS then
    rebase(vote_hour)
  end
  local outcome, was_spam, previous_hour, previous_counted = 'new', false, nil, false
  if previous then
    local p_hour, p_tag, p_weight, _, p_class = unpack_vote(previous)
    previous_counted = counted(p_weight, p_class)
    was_spam = is_spam(p_tag) and previous_counted
    previous_hour = p_hour
    apply(previous, voter, -1)
    outcome = 'retag'
    if mode == 'redate' then outcome = 'redated' end
  end
  local class = class_at(vote_hour, rank)
  local vote = pack_vote(vote_hour, tag, weight, network, class)
  local live = counted(weight, class)
  local flagged_before = fields[flag] ~= nil
  if violation and class ~= RETIRED then
    set(flag, 1)
    if live and not flagged_before then new_violation = 1 end
  elseif flagged_before then
    unset(flag)
  end
  -- Statistics count a device's vote on a number once: a retag moves no figure, nor does
  -- re-dating a vote that was counted already.
  if live and (outcome == 'new' or (outcome == 'redated' and not previous_counted)) then
    redis.call('HINCRBY', day_stats, 'n', 1)
    redis.call('HINCRBY', day_stats, 't' .. tag, 1)
    redis.call('EXPIRE', day_stats, STATS_DAYS * 86400)
  end
  apply(vote, voter, 1)
  set(voter, whole(vote))
  if voter == DETECTOR_VOTER then
    set('a', 1)
  elseif fresh and live and is_spam(tag) and not was_spam then
    feed_burst_guard()
  end
  note_report_time()
  -- A device's churn on one number keeps bounded details: a retag within a day keeps none.
  if details ~= '' and (not previous_hour or vote_hour - previous_hour >= DETAILS_RETAG_HOURS) then
    redis.call('XADD', details_stream, 'MINID', '~', min_id, '*', 'n', number, 't', tag, 'd', details)
  end
  return outcome
end

-- vote | redate: a vote with the voter's current tag is a duplicate, unless re-dated.
local function cast(previous)
  local outcome = 'duplicate'
  if mode == 'redate' or not previous or select(2, unpack_vote(previous)) ~= tag then
    outcome = place_vote(previous)
  elseif violation and not fields[flag] then  -- the same tag, now with a violation: flag the vote
    local _, _, vote_weight, _, vote_class = unpack_vote(previous)
    if vote_class ~= RETIRED then
      set(flag, 1)
      if counted(vote_weight, vote_class) then
        count('k', 1)
        new_violation = 1
      end
    end
  end
  if voter == DETECTOR_VOTER and fresh and not fields.h then
    hold()  -- a burst of fresh devices' rings is behind the detector's vote: hold it for review
  end
  return outcome
end

-- reweigh: the voter's vote keeps its tag and hour, and takes `weight` and `rank` (a
-- retired vote stays retired).
local function reweigh(previous)
  if not previous then return 'absent' end
  local hour, vote_tag, old_weight, vote_net, old_class = unpack_vote(previous)
  local new_class = old_class
  if old_class ~= RETIRED then new_class = rank end
  if old_weight == weight and old_class == new_class then return 'duplicate' end
  apply(previous, voter, -1)
  local vote = pack_vote(hour, vote_tag, weight, vote_net, new_class)
  apply(vote, voter, 1)
  set(voter, whole(vote))
  return 'reweighed'
end

local function withdraw(previous)
  if not previous then return 'absent' end
  apply(previous, voter, -1)
  unset(voter)
  if fields[flag] then unset(flag) end
  if voter == DETECTOR_VOTER then unset('a') end
  return 'withdrawn'
end

local function reevaluate()
  return 'evaluated'
end

local MODES = {vote = cast, redate = cast, reweigh = reweigh, withdraw = withdraw, eval = reevaluate}

local outcome = (MODES[mode] or reevaluate)(tonumber(fields.vote))
retire_due()
local where = {key = key, stream = stream, schedule = schedule, index = index, held = held, number = number,
               digits = digits, now = now, min_id = min_id}
local verdict, label, total, changed = publish(where, reporters, scores, fields, written, old_state)
-- The public monthly figures (blocklist/complaint_stats.py): a number marked (a verdict or a
-- label where it had none) and a ring-once the detector found, on the day they happened.
if (changed == 1 and old_state == 0) or (voter == DETECTOR_VOTER and outcome == 'new') then
  if changed == 1 and old_state == 0 then redis.call('HINCRBY', day_stats, 'm', 1) end
  if voter == DETECTOR_VOTER and outcome == 'new' then redis.call('HINCRBY', day_stats, 'r', 1) end
  redis.call('EXPIRE', day_stats, STATS_DAYS * 86400)
end
if total >= TOP_MIN then
  redis.call('ZADD', most_reported, total, number)
elseif mode ~= 'vote' then
  redis.call('ZREM', most_reported, number)
end
if rid_ttl > 0 then
  redis.call('SET', rid, '1', 'EX', rid_ttl)
end
return {outcome, verdict, label, changed, new_violation}
