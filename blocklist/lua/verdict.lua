-- verdict.lua: shared by every reputation script (it is prepended to each of them).
--
-- A number's reputation is one Redis hash (layout in blocklist/reputation.py):
--   r<i>  distinct reporters whose vote is tag i (i = the tag's index in blocklist/tags.py)
--   s<i>  their evidence in milli-units projected to the decay epoch (forward decay:
--         a vote cast t seconds after the epoch adds round(1000 * 2^(t / half_life)),
--         so a write is one HINCRBYFLOAT and nothing is rewritten as time passes)
--   f     first report, seconds since the epoch; l  last report (absent when equal to f)
--   v     published state: verdict code * 64 + label index + 1 (0 = unknown, no label)
--   <8 characters>  one device's vote: minute since the epoch * 32 + tag index

local VERDICT_UNKNOWN, VERDICT_ALLOW, VERDICT_WARN, VERDICT_BLOCK = 0, 1, 2, 3

local function contribution(vote)
  -- The evidence one vote added, recomputed exactly from what the vote stores.
  local minute = math.floor(vote / 32)
  return math.floor(1000 * 2 ^ (minute * 60 / HALF_LIFE) + 0.5)
end

local function read_counters(key)
  local fields = {}
  for i = 0, NTAGS - 1 do
    fields[2 * i + 1] = 'r' .. i
    fields[2 * i + 2] = 's' .. i
  end
  local values = redis.call('HMGET', key, unpack(fields))
  local reporters, scores = {}, {}
  for i = 0, NTAGS - 1 do
    reporters[i] = tonumber(values[2 * i + 1]) or 0
    scores[i] = tonumber(values[2 * i + 2]) or 0
  end
  return reporters, scores
end

-- Returns verdict code, label index (-1 for none), total reporters, net spam score now
-- (in reporters' worth of fresh evidence) and, for a block, the second (since the epoch)
-- at which decay alone will end it.
local function evaluate(reporters, scores, now)
  local spam_r, spam_s, safe_r, safe_s, info_r, total = 0, 0, 0, 0, 0, 0
  for i = 0, NTAGS - 1 do
    local kind = string.sub(KINDS, i + 1, i + 1)
    total = total + reporters[i]
    if kind == 's' then
      spam_r = spam_r + reporters[i]
      spam_s = spam_s + scores[i]
    elseif kind == 'x' then
      safe_r = safe_r + reporters[i]
      safe_s = safe_s + scores[i]
    else
      info_r = info_r + reporters[i]
    end
  end
  local net = spam_s - safe_s
  local score = net / 1000 * 2 ^ (-now / HALF_LIFE)
  local function dominant(wanted)
    local best, best_r = -1, 0
    for i = 0, NTAGS - 1 do  -- lower index = more severe, so ties keep the earlier tag
      if string.sub(KINDS, i + 1, i + 1) == wanted and reporters[i] > best_r then
        best, best_r = i, reporters[i]
      end
    end
    return best
  end
  if total == 0 then
    return VERDICT_UNKNOWN, -1, 0, 0, nil
  end
  if safe_r > 0 and (safe_s > spam_s or spam_r == 0) then
    return VERDICT_ALLOW, dominant('x'), total, score, nil
  end
  if spam_r >= BLOCK_MIN and score >= BLOCK_SCORE then
    local ends = HALF_LIFE * math.log(net / 1000 / BLOCK_SCORE) / math.log(2)
    return VERDICT_BLOCK, dominant('s'), total, score, ends
  end
  if spam_r > 0 then
    return VERDICT_WARN, dominant('s'), total, score, nil
  end
  return VERDICT_ALLOW, dominant('i'), total, score, nil
end

local function fmt_score(x)
  return string.format('%.4f', x)
end
