-- read.lua: a number's reputation as of now, without writing anything.
-- KEYS[1] number hash    KEYS[2] the HyperLogLog of devices that talked with the number
-- ARGV[1] now, unix seconds
-- Returns {verdict code, label index, reporters, score, first, last, override, disputed,
--          detected (the ring-once detector voted), held (by the burst guard), Do-Not-Call
--          violations (distinct reporters, the k field), then for every tag with reporters:
--          index, reporters, score}.
-- Scores come back as strings: Lua numbers would be truncated to integers on the way out.
-- (Votes that turned LIVE_HOURS old since the number's last write still count here until
-- the decay sweep retires them, within CALLMARK_SWEEP_INTERVAL.)

local key, now = KEYS[1], tonumber(ARGV[1])
local reporters, scores, fields = read_number(key, '')
fields.talkers_key = KEYS[2]
local verdict, label, total, score = evaluate(reporters, scores, now, fields)
local first = fields.f
local last = fields.l or first
local out = {verdict, label, total, fmt_score(score), first or false, last or false,
             fields.o or false, fields.d or false, fields.a or false, fields.h or false, tonumber(fields.k) or 0}
local factor = 2 ^ (((tonumber(fields.e) or 0) * HOUR - now) / HALF_LIFE) / EVIDENCE_UNIT
for i = 0, NTAGS - 1 do
  if reporters[i] > 0 then
    out[#out + 1] = i
    out[#out + 1] = reporters[i]
    out[#out + 1] = fmt_score(scores[i] * factor)
  end
end
return out
