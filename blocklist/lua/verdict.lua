-- verdict.lua: shared by every reputation script (it is prepended to each of them).
--
-- A number's reputation is one Redis hash, with a HyperLogLog of who talked with the number
-- beside it in the same slot: docs/STORAGE.md ("One number, one hash") documents every field
-- and the packing of a vote (pack_vote below).
--
-- The constants in capitals come from the header CallMark prepends (blocklist/store.py):
-- the settings, and the constants the Python code shares with the scripts
-- (reputation.SCRIPT_CONSTANTS), each defined there once.
--
-- A vote is counted (reporters, credit, score) while its weight is above 0 and it is younger
-- than LIVE_HOURS (4 half-lives: 1/16 of a fresh vote). Older votes are retired: they stay
-- as the voter's one vote on the number and count for nothing, so old evidence never makes
-- a block harder than it is for a number nobody reported.

local CREDITS = {[FRESH] = CREDIT_FRESH, [AGED] = CREDIT_AGED, [STANDING] = REPORTER_CREDIT}
-- A network's counted spam votes by class, packed in its n<4 hex> field; it adds the credit of its best class.
local CLASS_UNIT = {[FRESH] = 1, [AGED] = 65536, [STANDING] = 4294967296}
local NEEDED = BLOCK_MIN * REPORTER_CREDIT  -- credit a block needs (more for numbers people talk with)

-- A vote packs the hour it was cast (since 1970: 23 bits last to the year 2926), its tag,
-- its class, the voter's weight then (percent) and network (0 = none recorded). Everything
-- stays below 2^53, exact in a Lua number.
local function pack_vote(hour, tag, weight, net, class)
  return ((net * WEIGHT_SLOTS + (FULL_WEIGHT - weight)) * RANK_SLOTS + class) * LOW_BITS + hour * TAG_SLOTS + tag
end

-- hour, tag, weight (percent), network, class
local function unpack_vote(vote)
  local low, high = vote % LOW_BITS, math.floor(vote / LOW_BITS)
  local weight_net = math.floor(high / RANK_SLOTS)
  return math.floor(low / TAG_SLOTS), low % TAG_SLOTS, FULL_WEIGHT - weight_net % WEIGHT_SLOTS,
    math.floor(weight_net / WEIGHT_SLOTS), high % RANK_SLOTS
end

-- A number's published state (the v field) and back: verdict code and label index (-1: none).
local function pack_state(verdict, label)
  return verdict * STATE_LABELS + label + 1
end

local function unpack_state(state)
  return math.floor(state / STATE_LABELS), state % STATE_LABELS - 1
end

local function counted(weight, class)
  return weight > 0 and class ~= RETIRED
end

local function is_spam(tag)
  return string.byte(KINDS, tag + 1) == 115
end

-- The evidence one counted vote adds relative to the number's epoch `epoch` (hours),
-- recomputed exactly from what the vote stores.
local function contribution(vote, voter, epoch)
  local hour, _, weight = unpack_vote(vote)
  local scale = weight / FULL_WEIGHT
  if voter == DETECTOR_VOTER then scale = BLOCK_MIN end
  return math.floor(EVIDENCE_UNIT * scale * 2 ^ ((hour - epoch) * HOUR / HALF_LIFE) + 0.5)
end

-- The credit a network's packed class counts add toward a block: its best class's.
local function network_credit(packed)
  if packed >= CLASS_UNIT[STANDING] then return CREDITS[STANDING] end
  if packed >= CLASS_UNIT[AGED] then return CREDITS[AGED] end
  if packed > 0 then return CREDITS[FRESH] end
  return 0
end

local SMALL_HASH = 48  -- fields; a smaller hash is read whole, a bigger one field by field
local SINGLES = {'v', 'f', 'l', 'o', 'd', 'c', 'e', 'x', 'z', 'a', 'h', 'w', 'b', 't', 'k'}

-- A voter's Do-Not-Call violation flag: g<voter>, present only while its vote is one that
-- has not retired. k counts the flagged votes that are counted (the violations shown).
local function violation_flag(voter)
  return 'g' .. voter
end

-- A violation flag is 'g' and a device's voter field (VOTER_CHARS long); every other field of
-- six characters or more is a vote (imports and tests may file votes under longer names).
local function is_flag(name)
  return #name == VOTER_CHARS + 1 and string.sub(name, 1, 1) == 'g'
end

-- Reads a number's hash: per-tag reporters and scores (indexed from 0), the one-letter
-- fields, the vote of `voter` ('' for none) and the violation flags (fields[g<voter>]: all
-- of them from a small hash, the voter's from a big one). Returns reporters, scores, fields,
-- and every voter's vote (name, value, ...) when the hash was small enough to read whole.
local function read_number(key, voter)
  local reporters, scores, fields = {}, {}, {}
  for i = 0, NTAGS - 1 do
    reporters[i], scores[i] = 0, 0
  end
  if redis.call('HLEN', key) <= SMALL_HASH then
    -- Most numbers have a handful of fields: one HGETALL beats asking for every tag.
    local flat, votes = redis.call('HGETALL', key), {}
    for j = 1, #flat, 2 do
      local name, value = flat[j], flat[j + 1]
      if #name == 1 then
        fields[name] = value
      elseif #name <= 3 then
        local kind = string.byte(name, 1)
        if kind == 114 then  -- r<i>
          reporters[tonumber(string.sub(name, 2))] = tonumber(value)
        elseif kind == 115 then  -- s<i>
          scores[tonumber(string.sub(name, 2))] = tonumber(value)
        end
      elseif is_flag(name) then
        fields[name] = value
      elseif #name >= 6 then  -- a voter field (n<4 hex> has 5 characters)
        votes[#votes + 1] = name
        votes[#votes + 1] = value
        if name == voter then fields.vote = value end
      end
    end
    return reporters, scores, fields, votes
  end
  local flag = violation_flag(voter)
  local names = {voter}
  for _, name in ipairs(SINGLES) do names[#names + 1] = name end
  for i = 0, NTAGS - 1 do
    names[#names + 1] = 'r' .. i
    names[#names + 1] = 's' .. i
  end
  names[#names + 1] = flag
  local values = redis.call('HMGET', key, unpack(names))
  fields.vote = values[1]
  fields[flag] = values[#names] or nil
  for j, name in ipairs(SINGLES) do fields[name] = values[j + 1] or nil end
  local base = #SINGLES + 2
  for i = 0, NTAGS - 1 do
    reporters[i] = tonumber(values[base + 2 * i]) or 0
    scores[i] = tonumber(values[base + 1 + 2 * i]) or 0
  end
  return reporters, scores, fields, nil
end

-- How much credit a block needs: BLOCK_MIN reporters' worth, or more for a number many
-- people talk with. fields.talkers_key names the HyperLogLog of who talked with the number
-- (the caller script's key); it is counted only here, when every other condition of a block holds.
local function credit_needed(fields)
  local talkers = redis.call('PFCOUNT', fields.talkers_key)
  return REPORTER_CREDIT * math.max(BLOCK_MIN, math.min(TALK_CAP, math.ceil(talkers * TALK_SHARE)))
end

-- The crowd's verdict: verdict code, label index (-1 for none), total counted reporters,
-- net spam score now (in reporters' worth of fresh evidence) and, for a block, the unix
-- second at which decay alone will end it.
local function crowd_verdict(reporters, scores, now, fields)
  local spam_r, spam_s, safe_r, safe_s, info_r, total = 0, 0, 0, 0, 0, 0
  -- Dominant tag of each kind by reporters; lower index = more severe, so ties keep the earlier.
  local top_spam, top_safe, top_info = -1, -1, -1
  for i = 0, NTAGS - 1 do
    local r = reporters[i]
    if r > 0 then
      local kind = string.byte(KINDS, i + 1)
      total = total + r
      if kind == 115 then  -- 's': spam
        spam_r, spam_s = spam_r + r, spam_s + scores[i]
        if top_spam < 0 or r > reporters[top_spam] then top_spam = i end
      elseif kind == 120 then  -- 'x': safe
        safe_r, safe_s = safe_r + r, safe_s + scores[i]
        if top_safe < 0 or r > reporters[top_safe] then top_safe = i end
      else  -- 'i': information only
        info_r = info_r + r
        if top_info < 0 or r > reporters[top_info] then top_info = i end
      end
    end
  end
  if total == 0 then
    return VERDICT_UNKNOWN, -1, 0, 0, nil
  end
  local epoch = (tonumber(fields.e) or 0) * HOUR
  local net = math.max(0, spam_s - safe_s)
  local score = (spam_s - safe_s) / EVIDENCE_UNIT * 2 ^ ((epoch - now) / HALF_LIFE)
  if safe_r > 0 and (safe_s > spam_s or spam_r == 0) then
    return VERDICT_ALLOW, top_safe, total, score, nil
  end
  -- A block also needs the crowd to say spam clearly: more than twice as many spam reporters
  -- as informational and safe ones together. A hotline that many people are called by
  -- collects mistaken spam tags in proportion; its informational tags keep it open.
  local credit = tonumber(fields.c) or 0
  if credit >= NEEDED and score >= BLOCK_SCORE and spam_r > 2 * (info_r + safe_r)
      and credit >= credit_needed(fields) then
    local ends = epoch + HALF_LIFE * math.log(net / EVIDENCE_UNIT / BLOCK_SCORE) / math.log(2)
    return VERDICT_BLOCK, top_spam, total, score, ends
  end
  if spam_r > 0 then
    return VERDICT_WARN, top_spam, total, score, nil
  end
  return VERDICT_ALLOW, top_info, total, score, nil
end

local SAFE_TAG = string.find(KINDS, 'x') - 1

-- The verdict as published: the crowd's, unless an operator override or the burst guard
-- says otherwise. An override wins outright; a burst hold keeps a block at warn. An open
-- dispute changes nothing: only an operator's resolution does.
local function evaluate(reporters, scores, now, fields)
  local verdict, label, total, score, ends = crowd_verdict(reporters, scores, now, fields)
  if fields.o == OVERRIDE_ALLOW then
    return VERDICT_ALLOW, SAFE_TAG, total, score, nil
  elseif fields.o == OVERRIDE_BLOCK then
    if verdict ~= VERDICT_BLOCK and verdict ~= VERDICT_WARN then label = -1 end
    return VERDICT_BLOCK, label, total, score, nil
  elseif fields.h and verdict == VERDICT_BLOCK then
    return VERDICT_WARN, label, total, score, nil
  end
  return verdict, label, total, score, ends
end

local function fmt_score(x)
  return string.format('%.4f', x)
end

-- A script's writes of one number's hash, gathered so the hash is written once at the end:
-- returns the table (field -> new value, or false to delete it) and set and unset, which
-- also keep `fields` current for the verdict.
local function pending_writes(fields)
  local written = {}
  local function set(name, value)
    written[name] = value
    fields[name] = value
  end
  local function unset(name)
    written[name] = false
    fields[name] = nil
  end
  return written, set, unset
end

-- Evaluates a number after a script's changes and publishes its state: writes the hash (or
-- deletes it when nothing is left), logs a change of verdict or label to the change stream,
-- keeps the prefix index and the decay schedule. `at` names the keys and values involved:
-- key, stream, schedule, index, held (the bucket's keys), number, digits, now, min_id.
-- Returns verdict, label, total reporters and changed (0/1).
local function publish(at, reporters, scores, fields, written, old_state)
  local verdict, label, total, score, ends = evaluate(reporters, scores, at.now, fields)
  local state = pack_state(verdict, label)
  local emptied = total == 0 and not fields.z and not fields.o and not fields.d
  if emptied then
    redis.call('DEL', at.key)
    if fields.h then redis.call('SREM', at.held, at.number) end
  else
    if state ~= old_state then written.v = state end
    -- t: the hour the current block began (the trust review's standing rule)
    if verdict == VERDICT_BLOCK and not fields.t then written.t = math.floor(at.now / HOUR) end
    if verdict ~= VERDICT_BLOCK and fields.t then written.t = false end
    local updates, deletes = {}, {}
    for name, value in pairs(written) do
      if value == false then
        deletes[#deletes + 1] = name
      else
        updates[#updates + 1] = name
        updates[#updates + 1] = value
      end
    end
    if #deletes > 0 then redis.call('HDEL', at.key, unpack(deletes)) end
    if #updates > 0 then redis.call('HSET', at.key, unpack(updates)) end
  end
  local changed = 0
  if state ~= old_state then
    changed = 1
    if old_state == 0 then
      redis.call('SADD', at.index, at.digits)
    elseif state == 0 then
      redis.call('SREM', at.index, at.digits)
    end
    local label_field = ''
    if label >= 0 then label_field = tostring(label) end
    redis.call('XADD', at.stream, 'MINID', '~', at.min_id, '*', 'n', at.number, 'v', verdict, 'l', label_field,
      'r', total, 's', fmt_score(score), 't', string.format('%d', at.now))
  end
  -- When time alone may change the verdict: a block's decay, or the next vote retiring.
  local due = ends
  local x = tonumber(fields.x)
  if x and not emptied and (not due or x * HOUR < due) then due = x * HOUR end
  if due then
    redis.call('ZADD', at.schedule, due, at.number)
  else
    redis.call('ZREM', at.schedule, at.number)
  end
  return verdict, label, total, changed
end
