-- verdict.lua: shared by every reputation script (it is prepended to each of them).
--
-- A number's reputation is one Redis hash (layout in blocklist/reputation.py):
--   r<i>  distinct reporters whose vote is tag i (i = the tag's index in blocklist/tags.py)
--   s<i>  their evidence in milli-units projected to the decay epoch (forward decay:
--         a vote cast t seconds after the epoch adds round(1000 * weight * 2^(t / half_life)),
--         so a write is one HINCRBYFLOAT and nothing is rewritten as time passes)
--   f     first report, seconds since the epoch; l  last report (absent when equal to f)
--   v     published state: verdict code * 64 + label index + 1 (0 = unknown, no label)
--   o     operator override: 1 allow, 2 block (absent: none)
--   d     1 while the owner's dispute is open: the number shows warn at most
--   k, m  spam votes that carry a network, and how many distinct networks they come from
--   n<4 hex>  spam votes from one network (16-bit keyed hash of its /24 or /48)
--   a     1 when the ring-once detector has voted (its vote counts as BLOCK_MIN reporters)
--   h     1 while the burst guard holds the number at warn for review
--   w, b  the burst guard's window: its first minute and the fresh devices' spam tags in it
-- Beside the hash, in the same slot, a HyperLogLog counts who talked with the number.
--   <8 characters>  one voter's vote (see pack_vote)

local VERDICT_UNKNOWN, VERDICT_ALLOW, VERDICT_WARN, VERDICT_BLOCK = 0, 1, 2, 3
local DETECTOR = '~ringonc'  -- the ring-once detector's voter field; no device's can look like it
local LOW = 268435456  -- 2^28

-- A vote packs the minute it was cast (since the epoch), its tag, the voter's weight then
-- (percent) and network (0 = none recorded): a full-weight vote without a network is the
-- small integer minute * 32 + tag. Everything stays below 2^53, exact in a Lua number.
local function pack_vote(minute, tag, weight, net)
  return (net * 128 + (100 - weight)) * LOW + minute * 32 + tag
end

-- minute, tag, weight (percent), network
local function unpack_vote(vote)
  local low, high = vote % LOW, math.floor(vote / LOW)
  return math.floor(low / 32), low % 32, 100 - high % 128, math.floor(high / 128)
end

local function contribution(vote, voter)
  -- The evidence one vote added, recomputed exactly from what the vote stores.
  local minute, _, weight = unpack_vote(vote)
  local scale = weight / 100
  if voter == DETECTOR then scale = BLOCK_MIN end
  return math.floor(1000 * scale * 2 ^ (minute * 60 / HALF_LIFE) + 0.5)
end

local SMALL_HASH = 48  -- fields; a smaller hash is read whole, a bigger one field by field

-- Reads a number's hash: per-tag reporters and scores (indexed from 0), the one-letter
-- fields, and the vote of `voter` ('' for none). Returns reporters, scores, fields.
local function read_state(key, voter)
  local reporters, scores, fields = {}, {}, {}
  for i = 0, NTAGS - 1 do
    reporters[i], scores[i] = 0, 0
  end
  if redis.call('HLEN', key) <= SMALL_HASH then
    -- Most numbers have a handful of fields: one HGETALL beats asking for every tag.
    local flat = redis.call('HGETALL', key)
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
      elseif name == voter then
        fields.vote = value
      end
    end
    return reporters, scores, fields
  end
  local singles = {'v', 'f', 'l', 'o', 'd', 'k', 'm', 'a', 'h', 'w', 'b'}
  local names = {voter}
  for _, name in ipairs(singles) do names[#names + 1] = name end
  for i = 0, NTAGS - 1 do
    names[#names + 1] = 'r' .. i
    names[#names + 1] = 's' .. i
  end
  local values = redis.call('HMGET', key, unpack(names))
  fields.vote = values[1]
  for j, name in ipairs(singles) do fields[name] = values[j + 1] or nil end
  local base = #singles + 2
  for i = 0, NTAGS - 1 do
    reporters[i] = tonumber(values[base + 2 * i]) or 0
    scores[i] = tonumber(values[base + 1 + 2 * i]) or 0
  end
  return reporters, scores, fields
end

-- Spam reporters that count toward a block: distinct devices on distinct networks (a vote
-- without a network counts as its own), and the detector as BLOCK_MIN of them.
local function distinct_spam(spam_r, fields)
  local distinct = spam_r - (tonumber(fields.k) or 0) + (tonumber(fields.m) or 0)
  if fields.a then distinct = distinct + BLOCK_MIN - 1 end
  return distinct
end

-- How many of those a block needs: BLOCK_MIN, or more for a number many people talk with.
-- fields.talkers_key names the HyperLogLog of who talked with the number (the caller
-- script's key); it is counted only here, when every other condition of a block holds.
local function spam_needed(fields)
  local talkers = redis.call('PFCOUNT', fields.talkers_key)
  return math.max(BLOCK_MIN, math.min(TALK_CAP, math.ceil(talkers * TALK_SHARE)))
end

-- The crowd's verdict: verdict code, label index (-1 for none), total reporters, net spam
-- score now (in reporters' worth of fresh evidence) and, for a block, the second (since
-- the epoch) at which decay alone will end it.
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
  local net = spam_s - safe_s
  local score = net / 1000 * 2 ^ (-now / HALF_LIFE)
  if safe_r > 0 and (safe_s > spam_s or spam_r == 0) then
    return VERDICT_ALLOW, top_safe, total, score, nil
  end
  -- A block also needs the crowd to say spam clearly: more than twice as many spam reporters
  -- as informational and safe ones together. A hotline that many people are called by
  -- collects mistaken spam tags in proportion; its informational tags keep it open.
  local distinct = distinct_spam(spam_r, fields)
  if distinct >= BLOCK_MIN and score >= BLOCK_SCORE and spam_r > 2 * (info_r + safe_r)
      and distinct >= spam_needed(fields) then
    local ends = HALF_LIFE * math.log(net / 1000 / BLOCK_SCORE) / math.log(2)
    return VERDICT_BLOCK, top_spam, total, score, ends
  end
  if spam_r > 0 then
    return VERDICT_WARN, top_spam, total, score, nil
  end
  return VERDICT_ALLOW, top_info, total, score, nil
end

local SAFE_TAG = string.find(KINDS, 'x') - 1

-- The verdict as published: the crowd's, unless an operator override, an open dispute or
-- the burst guard says otherwise. An override wins outright; the other two hold a block at warn.
local function evaluate(reporters, scores, now, fields)
  local verdict, label, total, score, ends = crowd_verdict(reporters, scores, now, fields)
  if fields.o == '1' then
    return VERDICT_ALLOW, SAFE_TAG, total, score, nil
  elseif fields.o == '2' then
    if verdict ~= VERDICT_BLOCK and verdict ~= VERDICT_WARN then label = -1 end
    return VERDICT_BLOCK, label, total, score, nil
  elseif (fields.d or fields.h) and verdict == VERDICT_BLOCK then
    return VERDICT_WARN, label, total, score, nil
  end
  return verdict, label, total, score, ends
end

local function fmt_score(x)
  return string.format('%.4f', x)
end
