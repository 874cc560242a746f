#!/usr/bin/env bash
# The paper's hybrid strategy: a base table over ALL pairs (prompt.mode =
# base), then a RAG refresh overlaid on it (output.base_table): pairs with
# fresh data get RAG answers, every other pair keeps its base answer.
# `ragtide merge BASE RAG OUT` must give the same predictions from tables.
source "$RAGTIDE_SRC/tests/lib/common.sh"

make_data 40 150 6 51
start_sim sim "$T/data/catalog.tsv" --seed 4 --follow 1
write_config
N=40
mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set prompt.mode=base \
  --set "prompt.template=$RAGTIDE_SRC/jobs/prompts/base.tmpl" --set "output.table=$T/out/base.rtt" 2>"$T/log" ||
  { cat "$T/log"; fail "base run"; }
python3 -c "
import json; s=json.load(open('$T/out/base.rtt.summary.json'))
assert s['table']['pairs']['base'] == $N*($N-1) and s['table']['pairs']['none'] == $N, s['table']
assert s['stages']['read']['events'] == 0, 'the base run reads no logs'"
pass "base table: all $((N * (N - 1))) ordered pairs of distinct clusters answered"

mpirun_q -n 3 "$RT" refresh --config "$T/job.ini" --set "output.base_table=$T/out/base.rtt" \
  --set input.window_start=2026-01-05 --set "output.table=$T/out/served.rtt" 2>"$T/log" || { cat "$T/log"; fail "rag overlay run"; }
mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set input.window_start=2026-01-05 --set "output.table=$T/out/rag-only.rtt" 2>"$T/log" ||
  { cat "$T/log"; fail "rag-only run"; }
"$RT" export --format tsv "$T/out/base.rtt" >"$T/base.tsv"
"$RT" export --format tsv "$T/out/rag-only.rtt" >"$T/rag.tsv"
"$RT" export --format tsv "$T/out/served.rtt" >"$T/served.tsv"
python3 - "$T/base.tsv" "$T/rag.tsv" "$T/served.tsv" "$N" <<'PY'
import sys
def load(p):
    d = {}
    for line in open(p):
        f = line.rstrip("\n").split("\t")
        if f[0] != "c1" and f[2] == "0": d[(f[0], f[1])] = (f[3], f[4])
    return d
base, rag, served = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
n = int(sys.argv[4])
assert len(served) == n * (n - 1), len(served)
for k, v in served.items():
    want = (rag[k][0], "rag") if k in rag else (base[k][0], "base")
    assert v == want, (k, v, want)
print(f"ok: overlay: {len(rag)} rag pairs, {len(served) - len(rag)} base pairs, each from the right table")
PY
"$RT" merge "$T/out/base.rtt" "$T/out/rag-only.rtt" "$T/out/merged.rtt" >/dev/null
"$RT" export --format tsv "$T/out/merged.rtt" | cut -f1-5 >"$T/merged5.tsv"
cut -f1-5 "$T/served.tsv" | diff -q - "$T/merged5.tsv" >/dev/null || fail "merge and the overlay run disagree"
pass "ragtide merge gives the overlay's predictions"

# A base table from another catalog is refused before any work.
"$GEN" --clusters 41 --only-catalog --seed 99 --out "$T/other" >/dev/null
expect_exit 7 mpirun_q -n 2 "$RT" refresh --config "$T/job.ini" --set "input.catalog=$T/other/catalog.tsv" \
  --set "output.base_table=$T/out/base.rtt" --set "output.table=$T/out/x.rtt"
expect_err "was built for another catalog"
pass "a base table of another catalog is refused"
echo "hybrid: all checks passed"
