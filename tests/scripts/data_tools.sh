# data_tools.sh — the data tools end to end: generator -> aggregate (MPI) ->
# `ragtide drift` (text and --json) and `ragtide export-finetune`, on 90 days
# of generated logs whose successor preferences drift weekly.
source "$RAGTIDE_SRC/tests/lib/common.sh"

"$GEN" --clusters 30 --users 2000 --days 90 --seed 3 --start 2026-01-01 --out "$T/data" >/dev/null
write_config 2026-01-01 2026-04-01
mpirun_q -n 2 "$RT" aggregate --config "$T/job.ini" --out "$T/counts.rtc" 2>"$T/agg.log" ||
  { cat "$T/agg.log"; fail "aggregate"; }
pass "aggregate wrote the counts file"

# --- drift ------------------------------------------------------------------
"$RT" drift --counts "$T/counts.rtc" --json >"$T/drift.json" || fail "drift --json"
python3 - "$T/drift.json" <<'PY' || fail "drift --json values"
import json, sys
d = json.load(open(sys.argv[1]))
names = [p["name"] for p in d["periods"]]
assert names == ["2026-01", "2026-02", "2026-03"], names
assert [p["start"] for p in d["periods"]] == ["2026-01-01", "2026-02-01", "2026-03-01"]
assert d["k"] == 5 and d["first_day"] == "2026-01-01" and d["last_day"] == "2026-03-31", d
steps = d["steps"]
assert [(s["from"], s["to"]) for s in steps] == [("2026-01", "2026-02"), ("2026-02", "2026-03")]
pp = [p["pairs"] for p in d["periods"]]
for i, s in enumerate(steps):
    assert 0 < s["pairs"] <= min(pp[i], pp[i + 1]), (s, pp)
    assert 0 < s["mean"] < 1, s
    assert 0 <= s["variance"] <= s["mean"] * (1 - s["mean"]) + 1e-12, s  # values lie in [0, 1]
o = d["overall"]
assert o["pairs"] == sum(s["pairs"] for s in steps), (o, steps)
assert 0 < o["mean"] < 1, o
# pooled mean = pair-weighted mean of the steps
w = sum(s["pairs"] * s["mean"] for s in steps) / o["pairs"]
assert abs(w - o["mean"]) < 1e-9, (w, o)
ov = d["overlap_with_first"]
assert [x["period"] for x in ov] == names
assert ov[0]["pairs"] == pp[0], (ov[0], pp)
assert all(len(x["k"]) == 5 for x in ov)
assert all(0 <= v <= 1 for x in ov for v in x["k"])
# weekly drift in the generator: a later month keeps well under all of its top-1
assert ov[1]["k"][0] < 0.9 and ov[2]["k"][0] < 0.9, ov
# set sizes: every period's sets, by size 1..k, add up to its pairs; "set_sizes" pools them
for p in d["periods"]:
    h = p["set_sizes"]["sets_of_size"]
    assert len(h) == 5 and sum(h) == p["pairs"], p
    assert abs(p["set_sizes"]["mean"] - sum((i + 1) * n for i, n in enumerate(h)) / p["pairs"]) < 1e-9, p
allh = d["set_sizes"]["sets_of_size"]
assert allh == [sum(p["set_sizes"]["sets_of_size"][i] for p in d["periods"]) for i in range(5)], allh
assert allh[4] > 0 and 1 <= d["set_sizes"]["mean"] <= 5, d["set_sizes"]  # dense data fills top-5 sets
print("drift: mean %.4f variance %.4f over %d pairs" % (o["mean"], o["variance"], o["pairs"]))
PY
pass "drift --json: 3 months, consistent pair counts, mean in (0, 1), set sizes add up"

"$RT" drift --counts "$T/counts.rtc" --period week --k 3 --min-count 2 --json >"$T/week.json" || fail "drift week"
python3 - "$T/week.json" <<'PY' || fail "drift --period week values"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["periods"]) == 13, len(d["periods"])  # 90 days = 12 weeks + 6 days
assert d["periods"][1]["start"] == "2026-01-08"
assert len(d["steps"]) == 12 and all(len(x["k"]) == 3 for x in d["overlap_with_first"])
assert 0 < d["overall"]["mean"] < 1
PY
pass "drift --period week"

"$RT" drift --counts "$T/counts.rtc" >"$T/drift.txt" || fail "drift text"
grep -q "2026-01 -> 2026-02" "$T/drift.txt" || { cat "$T/drift.txt"; fail "text table lacks the first step"; }
grep -q "^  overall" "$T/drift.txt" || fail "text table lacks the overall line"
pass "drift text table"

expect_exit 3 "$RT" drift --counts "$T/missing.rtc"
expect_err "missing.rtc"
printf 'RTCOUNT1garbage' >"$T/bad.rtc"
expect_exit 3 "$RT" drift --counts "$T/bad.rtc"
expect_err "bad.rtc"
expect_exit 2 "$RT" drift --counts "$T/counts.rtc" --period 0d
expect_exit 2 "$RT" drift --counts "$T/counts.rtc" --k abc
expect_exit 2 "$RT" drift --json
expect_exit 2 "$RT" drift --counts "$T/counts.rtc" --frobnicate
pass "drift errors: exit 3 for bad counts, 2 for bad flags"

# --- export-finetune ------------------------------------------------------------
"$RT" export-finetune --config "$T/job.ini" --counts "$T/counts.rtc" --out "$T/ft" --pairs 300 \
  --cap-per-next 0.05 2>"$T/ft.log" || { cat "$T/ft.log"; fail "export-finetune"; }
for f in train.openai train.gemini test.openai test.gemini; do [ -s "$T/ft/$f.jsonl" ] || fail "no $f.jsonl"; done
python3 - "$T/ft" "$T/data/catalog.tsv" <<'PY' || fail "export-finetune output"
import collections, json, sys
d, catalog = sys.argv[1], sys.argv[2]
desc = set()
for line in open(catalog, encoding="utf-8"):
    if line.strip() and not line.startswith("#"):
        desc.add(line.rstrip("\n").split("\t", 1)[1].strip())
m = json.load(open(d + "/manifest.json"))
assert m["split_date"] == "2026-03-14", m["split_date"]  # last 18 of 90 days are test
assert m["cap"] == 15 and m["pairs"] == 300, m
for split in ("train", "test"):
    oa = [json.loads(l) for l in open("%s/%s.openai.jsonl" % (d, split), encoding="utf-8")]
    ge = [json.loads(l) for l in open("%s/%s.gemini.jsonl" % (d, split), encoding="utf-8")]
    n = m[split]["samples"]
    assert len(oa) == len(ge) == n and 0 < n <= 300, (split, len(oa), len(ge), n)
    labels = collections.Counter()
    for a, g in zip(oa, ge):
        roles = [x["role"] for x in a["messages"]]
        assert roles == ["system", "user", "assistant"], roles
        label = a["messages"][2]["content"]
        assert label in desc, "label %r is not a catalog description" % label
        assert g["contents"][1]["role"] == "model" and g["contents"][1]["parts"][0]["text"] == label
        assert g["contents"][0]["parts"][0]["text"] == a["messages"][1]["content"]
        assert g["systemInstruction"]["parts"][0]["text"] == a["messages"][0]["content"]
        assert "went on to watch" not in a["messages"][1]["content"], "base prompt has no RAG block"
        labels[label] += 1
    assert max(labels.values()) <= m["cap"], labels.most_common(3)
    assert len(labels) == m[split]["distinct_labels"]
    print("%s: %d samples, %d labels" % (split, n, len(labels)))
PY
pass "export-finetune: line counts match the manifest, every label is a catalog description"

expect_exit 3 "$RT" export-finetune --config "$T/job.ini" --counts "$T/missing.rtc" --out "$T/ft3"
expect_err "missing.rtc"
expect_exit 2 "$RT" export-finetune --config "$T/job.ini" --counts "$T/counts.rtc"
expect_exit 2 "$RT" export-finetune --config "$T/job.ini" --counts "$T/counts.rtc" --out "$T/ft3" --pairs x
pass "export-finetune errors"
