-- verdict.lua: shared by every reputation script (it is prepended to each of them).
--
-- A number's reputation is one Redis hash (layout in blocklist/reputation.py):
--   r<i>  distinct reporters whose vote is tag i (i = the tag's index in blocklist/tags.py)
--   s<i>  their evidence in milli-units projected to the decay epoch (forward decay:
--         a vote cast t seconds after the epoch adds round(1000 * 2^(t / half_life)),
--         so a write is one HINCRBYFLOAT and nothing is rewritten as time passes)
--   f     first report, seconds since the epoch; l  last report (absent when equal to f)
--   v     published state: verdict code * 64 + label index + 1 (0 = unknown, no label)
--   o     operator override: 1 allow, 2 block (absent: none)
--   d     1 while the owner's dispute is open: the number shows warn at most
--   <8 characters>  one device's vote: minute since the epoch * 32 + tag index

local VERDICT_UNKNOWN, VERDICT_ALLOW, VERDICT_WARN, VERDICT_BLOCK = 0, 1, 2, 3

local function contribution(vote)
  -- The evidence one vote added, recomputed exactly from what the vote stores.
  local minute = math.floor(vote / 32)
  return math.floor(1000 * 2 ^ (minute * 60 / HALF_LIFE) + 0.5)
end

local SMALL_HASH = 48  -- fields; a smaller hash is read whole, a bigger one field by field

-- Reads a number's hash: per-tag reporters and scores (indexed from 0), the state fields
-- v, f, l, o, d, and the vote of `voter` ('' for none). Returns reporters, scores, fields.
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
  local names = {'v', 'f', 'l', 'o', 'd', voter}
  for i = 0, NTAGS - 1 do
    names[#names + 1] = 'r' .. i
    names[#names + 1] = 's' .. i
  end
  local values = redis.call('HMGET', key, unpack(names))
  fields.v, fields.f, fields.l, fields.o, fields.d, fields.vote =
    values[1], values[2], values[3], values[4], values[5], values[6]
  for i = 0, NTAGS - 1 do
    reporters[i] = tonumber(values[7 + 2 * i]) or 0
    scores[i] = tonumber(values[8 + 2 * i]) or 0
  end
  return reporters, scores, fields
end

-- The crowd's verdict: verdict code, label index (-1 for none), total reporters, net spam
-- score now (in reporters' worth of fresh evidence) and, for a block, the second (since
-- the epoch) at which decay alone will end it.
local function crowd_verdict(reporters, scores, now)
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
  if spam_r >= BLOCK_MIN and score >= BLOCK_SCORE then
    local ends = HALF_LIFE * math.log(net / 1000 / BLOCK_SCORE) / math.log(2)
    return VERDICT_BLOCK, top_spam, total, score, ends
  end
  if spam_r > 0 then
    return VERDICT_WARN, top_spam, total, score, nil
  end
  return VERDICT_ALLOW, top_info, total, score, nil
end

local SAFE_TAG = string.find(KINDS, 'x') - 1

-- The verdict as published: the crowd's, unless an operator override or an open dispute
-- says otherwise. An override wins outright; a dispute holds a block at warn.
local function evaluate(reporters, scores, now, fields)
  local verdict, label, total, score, ends = crowd_verdict(reporters, scores, now)
  if fields.o == '1' then
    return VERDICT_ALLOW, SAFE_TAG, total, score, nil
  elseif fields.o == '2' then
    if verdict ~= VERDICT_BLOCK and verdict ~= VERDICT_WARN then label = -1 end
    return VERDICT_BLOCK, label, total, score, nil
  elseif fields.d and verdict == VERDICT_BLOCK then
    return VERDICT_WARN, label, total, score, nil
  end
  return verdict, label, total, score, ends
end

local function fmt_score(x)
  return string.format('%.4f', x)
end
