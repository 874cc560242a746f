#!/usr/bin/env bash
# endpoints.sh — benchmark of the LLM client against a real endpoint's faults and limits,
# with ragtide-llm-sim (not a test; issue 11).
#
#   tools/bench/endpoints.sh [BUILD_DIR]      (default: $RAGTIDE_BUILD or ./build)
#
# 1. Sporadic faults: sim --latency-ms 50, fault-free and with --fail-429 0.2 --retry-after 1
#    --fail-500 0.1 (rate-independent) on a prompt's first attempt (--fault-attempts 1, issue 11's
#    endpoint) and on every attempt, run alternately in this invocation, at llm.concurrency
#    64 and 512 (calls = in-flight x BENCH_ROUNDS). Target: faulty wall <= 1.2 x fault-free wall
#    + the largest Retry-After (1 s). Medians of BENCH_RUNS runs.
# 2. A real limit: sim --rps R (burst R), llm.concurrency 256, BENCH_RPS_SECONDS x R calls, with
#    and without --ratelimit-headers. Snapshots of the sim's /stats 5 s after the client started
#    and at its end give the rate answered after the first 5 s (target 95-100% of R) and the share
#    of requests answered 429 after the first 5 s (target <= 1%, <= 0.1% with the headers).
# 3. A token limit: sim --tpm T (OpenAI's tokens-per-minute, charged as prompt + max_tokens), no
#    rpm set on the client, with and without the -tokens headers: the tokens let through after the
#    first 5 s against T/60, and the 429 share, as in 2.
# Knobs (env): BENCH_INFLIGHT="64 512", BENCH_ROUNDS=600, BENCH_RPS="500 2000",
#   BENCH_RPS_SECONDS=15, BENCH_TPM="4000000", BENCH_RUNS=3, BENCH_PARTS="1 2 3".
# The client and the sim share this machine's cores (and whatever else runs on it).
set -euo pipefail

SRC="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$(cd "${1:-${RAGTIDE_BUILD:-$SRC/build}}" && pwd)"
SIM="$BUILD/ragtide-llm-sim"
INFLIGHT="${BENCH_INFLIGHT:-64 512}"
ROUNDS="${BENCH_ROUNDS:-600}"
RPS="${BENCH_RPS:-500 2000}"
RPS_SECONDS="${BENCH_RPS_SECONDS:-15}"
RUNS="${BENCH_RUNS:-3}"
PARTS="${BENCH_PARTS:-1 2 3}"
TPM="${BENCH_TPM:-4000000}"

for f in "$SIM" "$BUILD/libragtide_llm.a" "$BUILD/libragtide_base.a" "$BUILD/libragtide.a"; do
  [[ -e "$f" ]] || { echo "endpoints.sh: $f missing: cmake --build $BUILD first" >&2; exit 2; }
done

WORK="$(mktemp -d /tmp/rt_endpoints_XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

DRIVE="$WORK/llm_drive"
mpicc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -I"$SRC/src" -I"$SRC/include" "$SRC/tools/bench/llm_drive.c" \
  "$BUILD/libragtide_llm.a" "$BUILD/libragtide_base.a" "$BUILD/libragtide.a" \
  $(pkg-config --libs libcurl jansson inih libxxhash libzstd msgpack) -lm -o "$DRIVE"

python3 - "$SIM" "$DRIVE" "$WORK" "$INFLIGHT" "$ROUNDS" "$RPS" "$RPS_SECONDS" "$RUNS" "$PARTS" "$TPM" <<'EOF'
import json, os, statistics, subprocess, sys, time, urllib.request
sim, drive, work, inflight, rounds, rps, rps_s, runs, parts, tpm = sys.argv[1:]
inflight = [int(x) for x in inflight.split()]; rps = [int(x) for x in rps.split()]
tpm = [int(x) for x in tpm.split()]
rounds, rps_s, runs, parts = int(rounds), int(rps_s), int(runs), parts.split()
cat = os.path.join(work, "catalog.tsv")
words = ["jazz","hiking","cooking","chess","surfing","poetry","anime","baking","cycling","opera"]
with open(cat, "w") as f:
    for i in range(100):
        f.write(f"{1000+i}\t{words[i%10]}, {words[(i//10)%10]} lovers, group {i}\n")

def start_sim(*args):
    port = os.path.join(work, "port")
    if os.path.exists(port): os.unlink(port)
    p = subprocess.Popen([sim, "--catalog", cat, "--port", "0", "--port-file", port, "--seed", "1", *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(port) and open(port).read().strip(): break
        time.sleep(0.025)
    return p, int(open(port).read())

def stats(port):
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10))

def drive_cmd(port, n, k, *extra):
    return [drive, "--catalog", cat, "--n", str(n), "--set", f"llm.base_url=http://127.0.0.1:{port}",
            "--set", f"llm.concurrency={k}", "--set", "llm.max_attempts=20", "--set", "llm.max_failed_fraction=1",
            *extra]

def one(simargs, n, k):
    p, port = start_sim("--latency-ms", "50", *simargs)
    try:
        out = subprocess.run(drive_cmd(port, n, k), check=True, capture_output=True, text=True).stdout
    finally:
        p.terminate(); p.wait()
    return json.loads(out)

print(f"# endpoints benchmark: {os.cpu_count()} cores, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
FAULTS = ["--fail-429", "0.2", "--retry-after", "1", "--fail-500", "0.1"]
# Two endpoints: issue 11's, whose faults hit a prompt's first attempt (a retry goes through:
# --fault-attempts 1), where the target applies; and a harsher one whose every attempt draws
# afresh, so some calls meet several 429s in a row (reported, with its Retry-After tail).
FAULT_MODES = [("first-attempt", ["--fault-attempts", "1"]), ("every-attempt", [])]
if "1" in parts:
    print(f"## 1. sporadic faults: fault-free vs --fail-429 0.2 (Retry-After 1) --fail-500 0.1, sim --latency-ms 50 "
          f"(medians of {runs} runs, alternating)")
    print(f"{'inflight':<9}{'faults':<15}{'calls':<8}{'ff_wall':<9}{'faulty':<9}{'ratio':<7}{'bound':<8}{'ok':<4}"
          f"{'requests':<10}{'429s':<8}{'5xx':<7}{'cuts':<5}{'failed':<7}{'ff_cpu_us':<10}{'f_cpu_us':<9}")
    for k in inflight:
        n = k * rounds
        ff, fa = [], {m: [] for m, _ in FAULT_MODES}
        for _ in range(runs):
            ff.append(one([], n, k))
            for m, extra in FAULT_MODES:
                fa[m].append(one(FAULTS + extra, n, k))
        med = lambda rs, key: statistics.median(r[key] for r in rs)
        w0 = med(ff, "wall_s")
        bound = 1.2 * w0 + 1.0
        for m, _ in FAULT_MODES:
            w1 = med(fa[m], "wall_s")
            print(f"{k:<9}{m:<15}{n:<8}{w0:<9.2f}{w1:<9.2f}{w1/w0:<7.2f}{bound:<8.2f}{'yes' if w1 <= bound else 'NO':<4}"
                  f"{med(fa[m],'requests'):<10.0f}{med(fa[m],'http_429'):<8.0f}{med(fa[m],'http_5xx'):<7.0f}"
                  f"{med(fa[m],'rate_cuts'):<5.0f}{sum(r['failed'] for r in fa[m] + ff):<7}"
                  f"{med(ff,'cpu_us_per_request'):<10.1f}{med(fa[m],'cpu_us_per_request'):<9.1f}", flush=True)
def limited(simargs, n, extra, unit, per_s):
    """One run against a limited sim; after its first 5 s: the rate answered as a fraction of
    the limit (unit "requests": answered/s over per_s; "tokens": tokens the --tpm bucket let
    through/s over per_s) and the share of requests answered 429."""
    p, port = start_sim("--latency-ms", "50", *simargs)
    try:
        t0 = time.monotonic()
        d = subprocess.Popen(drive_cmd(port, n, 256, *extra), stdout=subprocess.PIPE, text=True)
        time.sleep(max(0.0, 5.0 - (time.monotonic() - t0)))
        s5, t5 = stats(port), time.monotonic()
        out = d.communicate()[0]
        te = time.monotonic()
        s2 = stats(port)
    finally:
        p.terminate(); p.wait()
    r = json.loads(out)
    key = "answered" if unit == "requests" else "tpm_tokens"
    dr = s2["requests"] - s5["requests"]
    r["after5"] = (s2[key] - s5[key]) / (te - t5) / per_s if te > t5 else 0
    r["share5"] = (s2["http_429"] - s5["http_429"]) / dr if dr else 0
    return r

def limited_rows(label, limit, simargs, n, extra, unit, per_s):
    for hdr in (0, 1):
        rows = [limited(simargs + (["--ratelimit-headers"] if hdr else []), n, extra, unit, per_s)
                for _ in range(runs)]
        med = lambda key: statistics.median(r[key] for r in rows)
        print(f"{limit:<9}{'on' if hdr else 'off':<9}{rows[0]['calls']:<8}{med('wall_s'):<8.2f}{med('after5'):<11.3f}"
              f"{med('share5'):<13.4f}{med('http_429'):<7.0f}{med('rate_cuts'):<6.0f}{med('rate_limit'):<11.0f}"
              f"{med('hdr_rate'):<9.0f}", flush=True)

HEAD = (f"{'limit':<9}{'headers':<9}{'calls':<8}{'wall':<8}{'after5s/L':<11}{'429_after5s':<13}{'429s':<7}"
        f"{'cuts':<6}{'final_rate':<11}{'hdr_rate':<9}")
if "2" in parts:
    print(f"## 2. a real limit: sim --rps R, llm.concurrency 256, {rps_s} x R calls; after the first 5 s "
          f"(medians of {runs} runs)")
    print(HEAD)
    for R in rps:
        limited_rows(R, R, ["--rps", str(R)], R * rps_s, ["--set", f"llm.rpm={R * 6000}"], "requests", R)
if "3" in parts:
    # A request costs its prompt (bytes/4, ~65 tokens here) plus llm.max_tokens (64) of the quota.
    print(f"## 3. a token limit: sim --tpm T (burst T/60), llm.concurrency 256, llm.max_tokens 64, "
          f"{rps_s} s worth of calls; tokens let through after the first 5 s against T/60 (medians of {runs} runs)")
    print(HEAD)
    for T in tpm:
        n = int(T / 60 / 130 * rps_s)
        limited_rows(T, T, ["--tpm", str(T)], n, ["--set", "llm.max_tokens=64"], "tokens", T / 60)
EOF
