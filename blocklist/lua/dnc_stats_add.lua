-- dnc_stats_add.lua: add counts to Do-Not-Call statistics hashes, as one command in the
-- statistics' own slot (a registration's own counts change some thirty fields at once).
-- KEYS    the hashes
-- ARGV    for each key in turn: its TTL in seconds (0: none set), the number n of its fields,
--         then n pairs of field and amount (an integer, possibly negative)
-- Returns the number of fields changed.

local at, changed = 1, 0
for k = 1, #KEYS do
  local ttl, n = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  at = at + 2
  for _ = 1, n do
    redis.call('HINCRBY', KEYS[k], ARGV[at], ARGV[at + 1])
    at = at + 2
  end
  changed = changed + n
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[k], ttl)
  end
end
return changed
