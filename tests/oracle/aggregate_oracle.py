#!/usr/bin/env python3
"""aggregate_oracle.py - the reference aggregation of event shards into
(c1, c2, c_next) triple counts. Python 3 standard library only, independent of
the C code: the job's counts, top-N and trend retrieval must equal this output.

The semantics (this script is the spec, docs/formats.md section 2):
 1. Read the catalog and every shard (TSV: user<TAB>ts<TAB>cluster<TAB>engagement,
    blank lines ignored; .tsv.zst is piped through `zstd -dc`).
    An event whose cluster is not in the catalog, whose timestamp is negative
    or >= 1e11 (milliseconds), or whose engagement is NaN, is a bad event: exit 3 (--on-bad-event fail, the default) or drop it (skip).
    Every event read is checked, inside the window or not.
 2. Keep events with engagement >= --min-engagement and
    window_start <= ts < window_end. For --out trend the previous window of
    equal length is aggregated the same way, on its own (steps 3-7 run once per
    window: no sequence crosses the window boundary).
 3. Per user, order the kept events by (ts, cluster id).
 4. --max-gap-s G > 0: a gap ts[i] - ts[i-1] > G splits the user's events into
    separate sequences (before dedup).
 5. Dedup each sequence: consecutive = collapse each run of one cluster to its
    first event; unique = keep only each cluster's last event, in the order of
    those last events.
 6. Drop sequences shorter than --min-seq-len.
 7. Each window (a, b, c) of three consecutive entries with a, b, c pairwise
    distinct is a triple, dated by the UTC day (and placed in a window by the
    ts) of the event kept for c.
 Outputs (ids are the catalog's external ids):
   counts  c1 c2 c_next YYYY-MM-DD count      triples dated in the window, sorted
   top     c1 c2 rank c_next count           per pair, --top-n successors by count in
                                             the window, ties by smaller c_next
   trend   c1 c2 rank c_next increase        per pair, successors with count(window) -
                                             count(previous window) > 0, largest first,
                                             ties by smaller c_next, at most --top-n
 Exit codes: 0 ok, 2 usage, 3 bad input (as rt_status).
"""
import argparse
import calendar
import collections
import glob
import math
import os
import signal
import subprocess
import sys
import tempfile
import time


class InputError(Exception):
    pass


def parse_utc(s):
    """'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM:SSZ' -> unix seconds."""
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return calendar.timegm(time.strptime(s, fmt))
        except ValueError:
            pass
    raise argparse.ArgumentTypeError("%r is not a UTC date YYYY-MM-DD" % s)


def utc_day(ts):
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def load_catalog(path):
    ids = set()
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip() or line.startswith("#"):
                    continue
                head = line.split("\t", 1)[0]
                if not head.isdigit() or int(head) > 0xFFFFFFFF:
                    raise InputError("%s:%d: bad cluster id %r" % (path, lineno, head))
                ids.add(int(head))
    except OSError as e:
        raise InputError("cannot open %s: %s" % (path, e.strerror))
    return ids


def shard_lines(path):
    if path.endswith(".tsv.zst"):
        try:
            out = subprocess.run(["zstd", "-dcq", path], check=True, stdout=subprocess.PIPE).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            raise InputError("cannot decompress %s: %s" % (path, e))
        return out.decode("utf-8").split("\n")
    if path.endswith(".tsv"):
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().split("\n")
        except OSError as e:
            raise InputError("cannot open %s: %s" % (path, e.strerror))
    raise InputError("%s: the oracle reads only .tsv and .tsv.zst shards" % path)


def read_events(paths):
    """Yield (user, ts, cluster, engagement) from every shard."""
    for path in paths:
        for lineno, line in enumerate(shard_lines(path), 1):
            line = line.rstrip("\r")
            if line == "":
                continue
            f = line.split("\t")
            if len(f) != 4:
                raise InputError("%s:%d: expected 4 fields, found %d" % (path, lineno, len(f)))
            try:
                user, ts, cluster, eng = int(f[0]), int(f[1]), int(f[2]), float(f[3])
            except ValueError:
                raise InputError("%s:%d: non-numeric field in %r" % (path, lineno, line))
            if user < 0 or not 0 <= cluster <= 0xFFFFFFFF:
                raise InputError("%s:%d: user or cluster out of range" % (path, lineno))
            yield user, ts, cluster, eng


def split_by_gap(events, max_gap):
    seqs, cur = [], []
    for ev in events:
        if cur and max_gap > 0 and ev[0] - cur[-1][0] > max_gap:
            seqs.append(cur)
            cur = []
        cur.append(ev)
    if cur:
        seqs.append(cur)
    return seqs


def dedup(seq, mode):
    if mode == "consecutive":
        out = []
        for ts, c in seq:
            if out and out[-1][1] == c:
                continue
            out.append((ts, c))
        return out
    last = {}
    for i, (ts, c) in enumerate(seq):
        last[c] = i
    return [seq[i] for i in sorted(last.values())]


def triples(events, catalog, lo, hi, a):
    """Return a Counter {(c1, c2, c_next, ts_of_c): n} over [lo, hi)."""
    per_user = collections.defaultdict(list)
    for user, ts, cluster, eng in events:
        bad = None
        if cluster not in catalog:
            bad = "cluster %d is not in the catalog" % cluster
        elif ts < 0 or ts >= 10**11:
            bad = "timestamp is negative or milliseconds"
        elif math.isnan(eng):
            bad = "engagement is NaN"
        if bad:
            if a.on_bad_event == "fail":
                raise InputError("user %d ts %d: %s" % (user, ts, bad))
            continue
        if eng >= a.min_engagement and lo <= ts < hi:
            per_user[user].append((ts, cluster))
    out = collections.Counter()
    for user in per_user:
        evs = sorted(per_user[user])
        for seq in split_by_gap(evs, a.max_gap_s):
            s = dedup(seq, a.dedup)
            if len(s) < a.min_seq_len:
                continue
            for i in range(2, len(s)):
                c1, c2, c3 = s[i - 2][1], s[i - 1][1], s[i][1]
                if c1 != c2 and c2 != c3 and c1 != c3:
                    out[(c1, c2, c3, s[i][0])] += 1
    return out


def ranked(scores, top_n):
    """scores: {(c1, c2): {c_next: value}} -> lines c1 c2 rank c_next value."""
    lines = []
    for pair in sorted(scores):
        succ = sorted(scores[pair].items(), key=lambda kv: (-kv[1], kv[0]))
        for rank, (c, v) in enumerate(succ[:top_n], 1):
            lines.append("%d\t%d\t%d\t%d\t%d" % (pair[0], pair[1], rank, c, v))
    return lines


def run(a, out):
    catalog = load_catalog(a.catalog)
    paths = []
    for p in a.shards:
        hits = sorted(glob.glob(p)) if any(ch in p for ch in "*?[") else [p]
        if not hits:
            raise InputError("no shard matches %s" % p)
        paths.extend(hits)
    lo, hi = a.window_start, a.window_end
    if hi <= lo:
        raise argparse.ArgumentTypeError("--window-end must be after --window-start")
    events = list(read_events(paths))  # walked once per window
    cur = collections.Counter()
    prev = collections.Counter()
    by_day = collections.Counter()
    for (c1, c2, c3, ts), n in triples(events, catalog, lo, hi, a).items():
        cur[(c1, c2, c3)] += n
        by_day[(c1, c2, c3, utc_day(ts))] += n
    if a.out == "trend":
        # Each window is aggregated on its own, exactly as a frequency run
        # over that window alone would count it.
        for (c1, c2, c3, ts), n in triples(events, catalog, lo - (hi - lo), lo, a).items():
            prev[(c1, c2, c3)] += n
    if a.out == "counts":
        lines = ["%d\t%d\t%d\t%s\t%d" % (k + (n,)) for k, n in sorted(by_day.items())]
    elif a.out == "top":
        scores = collections.defaultdict(dict)
        for (c1, c2, c3), n in cur.items():
            scores[(c1, c2)][c3] = n
        lines = ranked(scores, a.top_n)
    else:
        scores = collections.defaultdict(dict)
        for k in set(cur) | set(prev):
            inc = cur[k] - prev[k]
            if inc > 0:
                scores[(k[0], k[1])][k[2]] = inc
        lines = ranked(scores, a.top_n)
    for line in lines:
        out.write(line + "\n")


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shards", nargs="*", help="TSV shard paths or globs (quote globs)")
    p.add_argument("--catalog", help="catalog TSV")
    p.add_argument("--window-start", type=parse_utc, help="YYYY-MM-DD UTC, inclusive")
    p.add_argument("--window-end", type=parse_utc, help="YYYY-MM-DD UTC, exclusive")
    p.add_argument("--min-engagement", type=float, default=0.5)
    p.add_argument("--max-gap-s", type=int, default=0)
    p.add_argument("--dedup", choices=["consecutive", "unique"], default="consecutive")
    p.add_argument("--min-seq-len", type=int, default=3)
    p.add_argument("--top-n", type=int, default=1)
    p.add_argument("--out", choices=["counts", "top", "trend"], default="counts")
    p.add_argument("--on-bad-event", choices=["fail", "skip"], default="fail")
    p.add_argument("--selftest", action="store_true", help="check this script on a hand-computed example")
    return p


# ---- selftest ---------------------------------------------------------------
# Catalog 10..60. Day 1 = 2026-01-01 (1767225600), day 2 = 2026-01-02.
D1, D2 = 1767225600, 1767225600 + 86400
SELF_CATALOG = "10\ta, b\n20\tc, d\n30\te\n40\tf\n50\tg\n60\th\n"
SELF_SHARDS = [
    # shard A: user 1 on day 1, written out of order (the sort must fix it)
    "1\t%d\t30\t0.9\n1\t%d\t10\t0.9\n1\t%d\t20\t0.9\n1\t%d\t20\t0.8\n"
    "1\t%d\t40\t0.2\n1\t%d\t10\t1\n" % (D1 + 30, D1 + 10, D1 + 20, D1 + 25, D1 + 35, D1 + 40),
    # shard B: user 2 across days; a same-second tie (ts D2+5: 40 before 50);
    # a 2000 s gap; user 1 continues on day 2
    "2\t%d\t10\t0.5\n2\t%d\t20\t0.7\n2\t%d\t50\t0.6\n2\t%d\t40\t0.6\n"
    "2\t%d\t60\t0.9\n2\t%d\t10\t0.9\n\n1\t%d\t30\t0.9\n" % (D1 + 100, D1 + 200, D2 + 5, D2 + 5, D2 + 2005,
                                                         D2 + 2006, D2 + 50),
]
# Kept (min engagement 0.5), per user in (ts, cluster) order:
#   user 1: 10@D1+10 20@+20 20@+25 30@+30 10@+40 | 30@D2+50      (40 dropped: 0.2)
#   user 2: 10@D1+100 20@+200 | 40@D2+5 50@D2+5 60@D2+2005 10@D2+2006
# consecutive, no gap:
#   u1: 10 20 30 10 30 -> (10,20,30)@D1  (20,30,10)@D1  (30,10,30) not distinct
#   u2: 10 20 40 50 60 10 -> (10,20,40)@D2 (20,40,50)@D2 (40,50,60)@D2 (50,60,10)@D2
SELF_COUNTS_CONSEC = """10\t20\t30\t2026-01-01\t1
10\t20\t40\t2026-01-02\t1
20\t30\t10\t2026-01-01\t1
20\t40\t50\t2026-01-02\t1
40\t50\t60\t2026-01-02\t1
50\t60\t10\t2026-01-02\t1
"""
# unique (last occurrence of each cluster, in order of those):
#   u1: 20@+25 10@+40 30@D2+50 -> (20,10,30)@D2
#   u2: 20 40 50 60 10@D2+2006 -> (20,40,50) (40,50,60) (50,60,10), all D2
SELF_COUNTS_UNIQUE = """20\t10\t30\t2026-01-02\t1
20\t40\t50\t2026-01-02\t1
40\t50\t60\t2026-01-02\t1
50\t60\t10\t2026-01-02\t1
"""
# --max-gap-s 1000, consecutive: u1 day-1 part 10 20 30 10 (30@D2 is far) ->
#   (10,20,30) (20,30,10); u1 day 2: [30] too short;
#   u2: [10 20] short; [40 50] short (2000 s gap); [60 10] short.
SELF_COUNTS_GAP = """10\t20\t30\t2026-01-01\t1
20\t30\t10\t2026-01-01\t1
"""
# window = day 2 only, consecutive:
#   u1: [30] short; u2: 40 50 60 10 -> (40,50,60) (50,60,10)
# trend with window day 2: day 1 is the previous window, aggregated on its own
# (no sequence crosses the window boundary), day-2 triples minus day-1 triples.
#   cur (day 2 alone): (40,50,60) (50,60,10)   prev (day 1 alone): (10,20,30) (20,30,10)
SELF_TOP_DAY2 = """40\t50\t1\t60\t1
50\t60\t1\t10\t1
"""
SELF_TREND_DAY2 = """40\t50\t1\t60\t1
50\t60\t1\t10\t1
"""
# Ranking and ties: a pair with several successors (built separately below).
SELF_RANK_SHARD = "".join(
    "%d\t%d\t%d\t0.9\n" % (u, D1 + 10 * i, c)
    for u, seq in [(7, [10, 20, 30]), (8, [10, 20, 30]), (9, [10, 20, 50]), (11, [10, 20, 40]),
                   (12, [10, 20, 40])]
    for i, c in enumerate(seq))
# pair (10,20): 30 x2, 40 x2, 50 x1 -> rank 1 = 30 (tie with 40, smaller id), 2 = 40
SELF_RANK_TOP2 = "10\t20\t1\t30\t2\n10\t20\t2\t40\t2\n"


def selftest():
    fails = []
    with tempfile.TemporaryDirectory() as d:
        cat = os.path.join(d, "catalog.tsv")
        with open(cat, "w") as f:
            f.write(SELF_CATALOG)
        shards = []
        for i, text in enumerate(SELF_SHARDS + [SELF_RANK_SHARD]):
            shards.append(os.path.join(d, "s%d.tsv" % i))
            with open(shards[-1], "w") as f:
                f.write(text)

        def check(name, extra, expect, files=shards[:2]):
            a = parser().parse_args(["--catalog", cat] + files + extra)
            import io
            buf = io.StringIO()
            run(a, buf)
            if buf.getvalue() != expect:
                fails.append("%s:\n--- got\n%s--- expected\n%s" % (name, buf.getvalue(), expect))

        w12 = ["--window-start", "2026-01-01", "--window-end", "2026-01-03"]
        w2 = ["--window-start", "2026-01-02", "--window-end", "2026-01-03"]
        check("counts consecutive", w12, SELF_COUNTS_CONSEC)
        check("counts unique", w12 + ["--dedup", "unique"], SELF_COUNTS_UNIQUE)
        check("counts max gap", w12 + ["--max-gap-s", "1000"], SELF_COUNTS_GAP)
        check("top day 2", w2 + ["--out", "top"], SELF_TOP_DAY2)
        check("trend day 2", w2 + ["--out", "trend", "--top-n", "3"], SELF_TREND_DAY2)
        check("top ranks", w12 + ["--out", "top", "--top-n", "2"], SELF_RANK_TOP2, [shards[2]])
        check("min-seq-len 4", w12 + ["--out", "top", "--min-seq-len", "4"], "", [shards[2]])
        # an unknown cluster is an input error, or skipped on request
        bad = os.path.join(d, "bad.tsv")
        with open(bad, "w") as f:
            f.write("1\t%d\t99\t0.9\n" % D1)
        try:
            check("unknown cluster", w12, "", [bad])
            fails.append("unknown cluster: no error")
        except InputError as e:
            if "cluster 99 is not in the catalog" not in str(e):
                fails.append("unknown cluster: wrong message %s" % e)
        check("unknown cluster skipped", w12 + ["--on-bad-event", "skip"], "", [bad])
    if fails:
        for f in fails:
            sys.stderr.write("selftest FAILED: %s\n" % f)
        return 1
    print("selftest ok (9 checks)")
    return 0


def main(argv):
    p = parser()
    a = p.parse_args(argv)
    if a.selftest:
        return selftest()
    if not a.catalog or a.window_start is None or a.window_end is None or not a.shards:
        p.print_usage(sys.stderr)
        sys.stderr.write("aggregate_oracle.py: --catalog, --window-start, --window-end and shards "
                         "are required\n")
        return 2
    try:
        run(a, sys.stdout)
    except InputError as e:
        sys.stderr.write("aggregate_oracle.py: %s\n" % e)
        return 3
    except argparse.ArgumentTypeError as e:
        sys.stderr.write("aggregate_oracle.py: %s\n" % e)
        return 2
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head
    sys.exit(main(sys.argv[1:]))
