"""Load benchmark: the mixed traffic of a real day against `python app.py`, and /healthz alone.

    python bench/load.py --quick     # about 30 s in all
    python bench/load.py             # full: 2 to 3 minutes

It starts its own Redis 7 (redis-server from PATH; or REDIS_URL, which it FLUSHES), imports a
base of numbers with 1 to 5 reporters each through the storage layer, publishes the lists
twice with changes in between (so a delta from version 1 to the latest exists), then starts
`python app.py` (gunicorn, several workers) on loopback with the same secret and signing key,
registers devices over HTTP and runs ONE wrk load whose Lua script picks each request by
weighted random:

    45 %  GET /v1/lists/spam/manifest     (half with If-None-Match of the current ETag: 304)
    20 %  GET /v1/lists/spam/delta?from=1&to=<latest>
    25 %  GET /v1/numbers/<n>              (device token; 70 % imported numbers, 30 % unknown)
     7 %  POST /v1/reports                 (device token; distinct numbers and tags)
     3 %  POST /v1/calls                   (device token; ring-once, answered, outgoing)

Rate limits are raised far above what wrk can send, so this measures throughput, not the
limiter's refusals. Any response other than 200/201/202 and the expected 304, and any socket
error or timeout, is an error; the benchmark fails (exit 1) if there is one.
Needs wrk (Debian package `wrk`).
Final line: load_req_per_s=<n> p50_ms=<x> p99_ms=<y> errors=<k>
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import bench_app, machine, private_redis, service  # noqa: E402
from bench.ingest import Client, register  # noqa: E402
from blocklist import devices  # noqa: E402
from blocklist.keyring import new_seed_text  # noqa: E402
from blocklist.publish import publish  # noqa: E402
from blocklist.reputation import Vote, cast_votes, withdraw_vote  # noqa: E402
from sync import delta as delta_codec  # noqa: E402
from sync.signing import SigningKey

BATCH = 500  # votes per pipelined round trip while importing
MOBILE_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "158",
                   "159", "186", "187", "188", "189")
REPORTERS = ((1, 45), (2, 20), (3, 15), (4, 10), (5, 10))  # reporters per imported number, weight
MAIN_TAGS = (("loan", 25), ("harassment", 12), ("telemarketing", 12), ("real_estate", 10), ("fraud", 8),
             ("insurance", 6), ("education", 5), ("ring_once", 5), ("debt_collection", 5), ("securities", 3),
             ("delivery", 5), ("customer_service", 2), ("safe", 2))
SPAM_TAGS = ("loan", "harassment", "telemarketing", "real_estate", "fraud", "insurance", "education",
             "ring_once", "debt_collection", "securities", "recruitment", "silent")
MIX = (("manifest", 45), ("delta", 20), ("lookup", 25), ("report", 7), ("call", 3))  # percent
CONDITIONAL_SHARE = 0.5  # manifest requests that carry If-None-Match of the current ETag
KNOWN_LOOKUP_SHARE = 0.7  # lookups of imported numbers; the rest are unknown numbers
LOOKUP_SAMPLE = 5000  # imported numbers the Lua script draws lookups and reports from
DEVICES = 50
WRK_THREADS, WRK_CONNECTIONS, WRK_TIMEOUT = 2, 32, "5s"
EXPECTED = {"manifest_200", "manifest_304", "delta_200", "lookup_200", "report_201", "call_202"}
HUGE_LIMIT = "10000000/minute"


def weighted(rng: random.Random, table) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def numbers(count: int, rng: random.Random) -> list[str]:
    seen: set[str] = set()
    while len(seen) < count:
        seen.add(f"+86{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**8):08d}")
    return sorted(seen, key=lambda _: rng.random())


def import_base(store, count: int, rng: random.Random) -> tuple[list[str], dict[str, list[str]]]:
    """`count` numbers, each reported by 1 to 5 distinct reporters. Returns the numbers and the
    voters of each number that has exactly 3 reporters (candidates to unblock later)."""
    pool = numbers(count, rng)
    voters = [devices.voter_field(store.secret, f"import-{i}") for i in range(20_000)]
    now = store.clock()
    threes: dict[str, list[str]] = {}
    votes: list[Vote] = []
    for number in pool:
        k = int(weighted(rng, REPORTERS))
        main = weighted(rng, MAIN_TAGS)
        who = rng.sample(voters, k)
        if k == 3:
            threes[number] = who
        for voter in who:
            tag = main if rng.random() < 0.8 else rng.choice(SPAM_TAGS)
            votes.append(Vote(number=number, tag=tag, voter=voter, at=now))
        if len(votes) >= BATCH:
            cast_votes(store, votes)
            votes = []
    if votes:
        cast_votes(store, votes)
    return pool, threes


def change_base(store, pool: list[str], threes: dict[str, list[str]], rng: random.Random) -> tuple[int, int]:
    """Between two publishes: new blocked numbers, and blocked numbers that lose a reporter."""
    added = numbers(len(pool) // 50 + len(pool), rng)
    existing = set(pool)
    added = [n for n in added if n not in existing][: len(pool) // 50]
    voters = [devices.voter_field(store.secret, f"later-{i}") for i in range(2_000)]
    now = store.clock()
    votes = [Vote(number=n, tag=rng.choice(SPAM_TAGS[:5]), voter=v, at=now)
             for n in added for v in rng.sample(voters, rng.randint(3, 5))]
    for i in range(0, len(votes), BATCH):
        cast_votes(store, votes[i:i + BATCH])
    removed = 0
    for number, who in list(threes.items())[: len(pool) // 200]:
        withdraw_vote(store, number, who[0])
        removed += 1
    return len(added), removed


LUA = r"""
-- generated by bench/load.py
local tokens = %(tokens)s
local known = %(known)s
local prefixes = %(prefixes)s
local spam_tags = %(spam_tags)s
local all_tags = %(all_tags)s
local cum = %(cum)s
local classes = %(classes)s
local etag = %(etag)s
local latest = %(latest)d
local conditional_share = %(conditional)s
local known_share = %(known_share)s

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(id * 7919 + 104729)
  sent = {}
  got = {}
  samples = {}
  nsamples = 0
  seq = 0
  tok = id
  manifest_plain = wrk.format("GET", "/v1/lists/spam/manifest")
  manifest_cond = wrk.format("GET", "/v1/lists/spam/manifest", {["If-None-Match"] = etag})
  delta_req = wrk.format("GET", "/v1/lists/spam/delta?from=1&to=" .. latest)
end

local function token()
  tok = tok %% #tokens + 1
  return tokens[tok]
end

local function unknown_number()
  return "+86" .. prefixes[math.random(#prefixes)] .. string.format("%%08d", math.random(0, 99999999))
end

local function some_number()
  if math.random() < known_share then return known[math.random(#known)] end
  return unknown_number()
end

local function pick()
  local r = math.random(100)
  for i = 1, #cum do
    if r <= cum[i] then return classes[i] end
  end
  return classes[#classes]
end

function request()
  local class = pick()
  sent[class] = (sent[class] or 0) + 1
  if class == "manifest" then
    if math.random() < conditional_share then return manifest_cond end
    return manifest_plain
  elseif class == "delta" then
    return delta_req
  elseif class == "lookup" then
    return wrk.format("GET", "/v1/numbers/" .. some_number(), {["Authorization"] = "Bearer " .. token()})
  end
  seq = seq + 1
  local headers = {["Authorization"] = "Bearer " .. token(), ["Content-Type"] = "application/json"}
  local body
  if class == "report" then
    local tag
    if math.random() < 0.85 then tag = spam_tags[math.random(#spam_tags)] else tag = all_tags[math.random(#all_tags)] end
    body = '{"number":"' .. some_number() .. '","tag":"' .. tag .. '"'
    if math.random() < 0.5 then body = body .. ',"report_id":"lt' .. id .. '-' .. seq .. '"' end
    if math.random() < 0.3 then
      body = body .. ',"call":{"ring_seconds":' .. math.random(1, 30) .. ',"answered":' .. (math.random() < 0.5 and "true" or "false") .. '}'
    end
    body = body .. '}'
    return wrk.format("POST", "/v1/reports", headers, body)
  end
  local r = math.random()
  if r < 0.6 then  -- a short unanswered ring
    body = '{"number":"' .. some_number() .. '","ring_seconds":' .. string.format("%%.1f", math.random() * 2.5) ..
           ',"answered":false,"direction":"incoming"}'
  elseif r < 0.85 then
    body = '{"number":"' .. some_number() .. '","ring_seconds":' .. math.random(1, 20) ..
           ',"answered":true,"direction":"incoming","duration_seconds":' .. math.random(5, 600) .. '}'
  else
    body = '{"number":"' .. some_number() .. '","ring_seconds":' .. math.random(1, 20) ..
           ',"answered":true,"direction":"outgoing","duration_seconds":' .. math.random(30, 900) .. '}'
  end
  return wrk.format("POST", "/v1/calls", headers, body)
end

function response(status, headers, body)
  local k
  if status == 304 then
    k = "manifest_304"
  elseif status == 200 then
    local ct = headers["Content-Type"] or headers["content-type"] or ""
    if string.find(ct, "octet-stream", 1, true) then
      k = "delta_200"
    elseif string.sub(body, 1, 12) == '{"manifest":' then
      k = "manifest_200"
    elseif string.find(body, '"verdict"', 1, true) then
      k = "lookup_200"
    else
      k = "other_200"
    end
  elseif status == 201 then
    k = "report_201"
  elseif status == 202 then
    k = "call_202"
  else
    k = "status_" .. status
  end
  got[k] = (got[k] or 0) + 1
  if k ~= "manifest_304" and k ~= "manifest_200" and k ~= "delta_200" and k ~= "lookup_200"
     and k ~= "report_201" and k ~= "call_202" and nsamples < 5 then
    nsamples = nsamples + 1
    samples[nsamples] = k .. " " .. string.gsub(string.sub(body or "", 1, 300), "%%s+", " ")
  end
end
"""

DONE_LUA = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("LOAD requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
  io.write(string.format("LOAD p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
  for _, t in ipairs(threads or {}) do
    local s = t:get("sent")
    if s then for k, v in pairs(s) do io.write(string.format("LOAD sent %s %d\n", k, v)) end end
    local g = t:get("got")
    if g then for k, v in pairs(g) do io.write(string.format("LOAD got %s %d\n", k, v)) end end
    local m = t:get("samples")
    if m then for _, v in pairs(m) do io.write("LOAD sample " .. v .. "\n") end end
  end
end
"""

BASELINE_LUA = DONE_LUA  # done() alone: no per-request Lua for /healthz


def lua_list(values) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


def write_script(text: str) -> str:
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="cm-load-", delete=False)
    f.write(text)
    f.close()
    return f.name


def run_wrk(url: str, seconds: int, script: str) -> dict:
    """One wrk run; the numbers its done() printed, summed over threads."""
    args = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}",
            "-s", script, url]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0 or "LOAD requests=" not in proc.stdout:
        raise SystemExit(f"bench: wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    out: dict = {"sent": {}, "got": {}, "samples": []}
    for line in proc.stdout.splitlines():
        if not line.startswith("LOAD "):
            continue
        rest = line[5:]
        kind, _, tail = rest.partition(" ")
        if kind in ("sent", "got"):
            name, value = tail.rsplit(" ", 1)
            out[kind][name] = out[kind].get(name, 0) + int(value)
        elif kind == "sample":
            out["samples"].append(tail)
        else:
            out.update({k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", rest)})
    out["req_per_s"] = out["requests"] / (out["duration_us"] / 1e6)
    out["socket_errors"] = int(out["connect"] + out["read"] + out["write"] + out["timeout"])
    return out


def preflight(base: str, token: str, known: str, latest: int) -> str:
    """One request of each class by hand; returns the manifest's ETag. Fails loudly on a surprise."""
    client = Client(base)
    client.conn.request("GET", "/v1/lists/spam/manifest")
    response = client.conn.getresponse()
    body = response.read()
    etag = response.getheader("ETag")
    assert response.status == 200 and etag, (response.status, body[:200])
    manifest = json.loads(body)["manifest"]
    assert manifest["version"] == latest, manifest
    client.conn.request("GET", "/v1/lists/spam/manifest", headers={"If-None-Match": etag})
    response = client.conn.getresponse()
    response.read()
    assert response.status == 304, f"a conditional manifest request answered {response.status}, not 304"
    status, body = client.request("GET", f"/v1/lists/spam/delta?from=1&to={latest}")
    assert status == 200, (status, body[:200])
    header, delta_bytes = delta_codec.decode_header(body)[0], len(body)
    assert (header.from_version, header.to_version) == (1, latest), header
    status, body = client.request("GET", f"/v1/numbers/{known}", token=token)
    assert status == 200 and json.loads(body)["verdict"] == "block", (status, body[:200])
    status, body = client.request("POST", "/v1/reports", json.dumps({"number": known, "tag": "loan"}).encode(), token)
    assert status == 201, (status, body[:200])
    status, body = client.request("POST", "/v1/calls", json.dumps(
        {"number": known, "ring_seconds": 1.0, "answered": False, "direction": "incoming"}).encode(), token)
    assert status == 202, (status, body[:200])
    print(f"preflight: manifest 200 (ETag {etag}, {manifest['count']:,} numbers), conditional 304, "
          f"delta 1->{latest} {delta_bytes:,} B ok, lookup/report/call ok")
    return etag


def errors_of(result: dict) -> int:
    unexpected = sum(v for k, v in result["got"].items() if k not in EXPECTED)
    return unexpected + result["socket_errors"]


def line(name: str, r: dict) -> str:
    return (f"{name}: {r['req_per_s']:,.0f} req/s, {int(r['requests']):,} requests in {r['duration_us'] / 1e6:.1f} s; "
            f"latency p50 {r['p50_us'] / 1000:.2f} ms, p90 {r['p90_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms, "
            f"p99.9 {r['p999_us'] / 1000:.2f} ms, max {r['max_us'] / 1000:.1f} ms; "
            f"socket errors {r['socket_errors']}, HTTP >= 400 {int(r['status'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="about 30 s in all")
    parser.add_argument("--numbers", type=int, help="imported numbers (default 20k quick, 50k full)")
    parser.add_argument("--seed", type=int, default=20260528)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is not on PATH (Debian package `wrk`)")
    count = args.numbers or (20_000 if args.quick else 50_000)
    warmup, health_s, mix_s = (2, 5, 14) if args.quick else (5, 20, 90)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    print(f"machine: {machine()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(2 cores shared with other work: figures are noisy)")
    with private_redis() as url:
        app, store, secret = bench_app(url)
        t0 = time.perf_counter()
        pool, threes = import_base(store, count, rng)
        t_import = time.perf_counter() - t0
        seed_text = new_seed_text().decode().strip()
        signer = SigningKey.from_base64(seed_text)
        t0 = time.perf_counter()
        first = publish(store, signer)
        added, removed = change_base(store, pool, threes, rng)
        second = publish(store, signer)
        t_publish = time.perf_counter() - t0
        spam = next(p for p in second if p.list == "spam")
        print(f"base: {count:,} numbers with 1-5 reporters imported in {t_import:.1f} s; published twice "
              f"({t_publish:.1f} s) with +{added:,} new blocks and {removed:,} blocks losing a reporter between")
        for p in first + second:
            print(f"    {p.line()}")
        latest = spam.version
        blocked = [n for n in pool if store.redis.sismember(store.keys.list_members("spam"), n)]
        known = rng.sample(pool, min(LOOKUP_SAMPLE, len(pool)))

        data_dir = tempfile.mkdtemp(prefix="cm-load-data-")
        env = dict(CALLMARK_SECRET_KEY=secret, CALLMARK_SIGNING_KEY=seed_text, CALLMARK_DATA_DIR=data_dir,
                   CALLMARK_SWEEP_INTERVAL="0", CALLMARK_PUBLISH_INTERVAL="0",
                   CALLMARK_RATE_LIMIT_LOOKUPS=HUGE_LIMIT, CALLMARK_RATE_LIMIT_REPORTS=HUGE_LIMIT,
                   CALLMARK_RATE_LIMIT_REGISTRATION=HUGE_LIMIT, CALLMARK_RATE_LIMIT_CALLS=HUGE_LIMIT)
        scripts: list[str] = []
        try:
            with service(url, **env) as base:
                tokens = [t for _, t in register(base, DEVICES)]
                etag = preflight(base, tokens[0], blocked[0], latest)
                cum, total = [], 0
                for _, w in MIX:
                    total += w
                    cum.append(total)
                mix_script = write_script(LUA % dict(
                    tokens=lua_list(tokens), known=lua_list(known), prefixes=lua_list(MOBILE_PREFIXES),
                    spam_tags=lua_list(SPAM_TAGS), all_tags=lua_list(t for t, _ in MAIN_TAGS),
                    cum="{" + ",".join(map(str, cum)) + "}", classes=lua_list(c for c, _ in MIX),
                    etag=json.dumps(etag), latest=latest, conditional=CONDITIONAL_SHARE,
                    known_share=KNOWN_LOOKUP_SHARE) + DONE_LUA)
                health_script = write_script(BASELINE_LUA)
                scripts += [mix_script, health_script]
                print(f"service: python app.py (gunicorn gthread, default workers/threads), {DEVICES} devices; "
                      f"rate limits raised to {HUGE_LIMIT} (lookups, reports, calls, registration): "
                      "this measures throughput, not the limiter's refusals")
                print(f"wrk: -t{WRK_THREADS} -c{WRK_CONNECTIONS} --timeout {WRK_TIMEOUT}, loopback; "
                      f"warm-up {warmup} s of the mix (not counted), /healthz {health_s} s, mix {mix_s} s"
                      + ("" if args.quick else f", /healthz {health_s} s again"))
                warm = run_wrk(base, warmup, mix_script)
                health = [run_wrk(base + "/healthz", health_s, health_script)]
                mix = run_wrk(base, mix_s, mix_script)
                if not args.quick:
                    health.append(run_wrk(base + "/healthz", health_s, health_script))
        finally:
            for s in scripts:
                os.unlink(s)
            shutil.rmtree(data_dir, ignore_errors=True)

    for i, h in enumerate(health, 1):
        print(line(f"GET /healthz alone (round {i})", h))
    print(line("mixed day", mix))
    answered = sum(mix["got"].values())
    print("    by class (sent by the script; answered, by status):")
    for name, share in MIX:
        sent = mix["sent"].get(name, 0)
        got = {k: v for k, v in mix["got"].items() if k.startswith(name + "_")}
        print(f"    {name:<9} target {share:>2} %  sent {sent:>8,} ({100 * sent / max(1, sum(mix['sent'].values())):4.1f} %)"
              f"  answered " + ", ".join(f"{k.split('_', 1)[1]}: {v:,}" for k, v in sorted(got.items())))
    others = {k: v for k, v in mix["got"].items() if k not in EXPECTED}
    if others:
        print(f"    UNEXPECTED: {others}")
    for s in mix["samples"]:
        print(f"    sample: {s}")
    print(f"    answered {answered:,} of {int(sum(mix['sent'].values())):,} sent (the rest were in flight at the end)")
    warm_errors = errors_of(warm)
    errors = errors_of(mix) + sum(h["socket_errors"] + int(h["status"]) for h in health)
    best_health = max(h["req_per_s"] for h in health)
    print(f"mixed / healthz: {mix['req_per_s'] / best_health:.2f} of the best /healthz round "
          f"({best_health:,.0f} req/s)")
    print(f"error rate: {errors} of {int(mix['requests']):,} ({100 * errors / max(1, mix['requests']):.3f} %)"
          f"{f'; warm-up errors {warm_errors}' if warm_errors else ''}; total time {time.perf_counter() - started:.0f} s")
    print(f"load_req_per_s={mix['req_per_s']:.0f} p50_ms={mix['p50_us'] / 1000:.2f} "
          f"p99_ms={mix['p99_us'] / 1000:.2f} errors={errors + warm_errors}")
    if errors or warm_errors:
        sys.exit(f"bench: FAILED: {errors + warm_errors} errors under load (see the samples above)")


if __name__ == "__main__":
    main()
