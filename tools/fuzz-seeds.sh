#!/usr/bin/env bash
# Make the seed corpora of the fuzz targets (tests/fuzz/) from the project's
# own tools, into OUT/<target>/ (tools/fuzz.sh calls it; nothing generated is
# committed). Needs a normal build (ragtide, ragtide-gen-logs, ragtide-llm-sim).
#   tools/fuzz-seeds.sh BUILD OUT
# Each target's seeds start with the selector byte its header describes; the
# hand-written seeds of tests/fuzz/seeds/<target>/ are copied as they are.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:?usage: fuzz-seeds.sh BUILD OUT}" && pwd)
OUT=${2:?usage: fuzz-seeds.sh BUILD OUT}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
W=$(mktemp -d /tmp/ragtide-fuzz-seeds.XXXXXX)
SIM_PID=
cleanup() { [ -n "$SIM_PID" ] && { kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; }; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$OUT"
for t in table catalog events config counts answers openai gemini; do
  rm -rf "${OUT:?}/$t"; mkdir -p "$OUT/$t"
  [ -d "$SRC/tests/fuzz/seeds/$t" ] && cp "$SRC/tests/fuzz/seeds/$t"/* "$OUT/$t/"
done
# seed TARGET NAME SELECTOR(octal escape or "") FILE: selector byte + file
seed() { { [ -n "$3" ] && printf "$3"; cat "$4"; } >"$OUT/$1/$2"; }

# --- logs in the four shard formats, tiny: 10 users, 3 days, 1 shard a day
for f in msgpack.zst msgpack tsv tsv.zst; do
  "$B/ragtide-gen-logs" --clusters 12 --users 10 --days 3 --seed 5 --start 2026-01-01 --shards-per-day 1 \
    --events-per-user-day 4 --format "$f" --threads 1 --out "$W/$f" >/dev/null 2>&1
done
seed catalog gen-12 "" "$W/tsv/catalog.tsv"
"$B/ragtide-gen-logs" --clusters 40 --only-catalog --seed 9 --out "$W/cat40" >/dev/null 2>&1
seed catalog gen-40 "" "$W/cat40/catalog.tsv"
i=0
for d in "$W"/msgpack/logs/*/; do
  i=$((i + 1))
  seed events "msgpack-$i" '\000' "$d/part-0000.msgpack"
  seed events "msgpack-zst-raw-$i" '\001' "$W/msgpack.zst/logs/$(basename "$d")/part-0000.msgpack.zst"
  seed events "msgpack-zst-$i" '\005' "$d/part-0000.msgpack"
  seed events "tsv-$i" '2' "$W/tsv/logs/$(basename "$d")/part-0000.tsv"
  seed events "tsv-zst-raw-$i" '\003' "$W/tsv.zst/logs/$(basename "$d")/part-0000.tsv.zst"
  seed events "tsv-zst-$i" '\007' "$W/tsv/logs/$(basename "$d")/part-0000.tsv"
done

# TSV with a header and malformed lines, read with and without skipping them (selector bit 7)
printf 'user_id\tts\tcluster_id\tengagement\r\n7\t1767225600\t%s\t1.0\n\n7\t12x\t1\t1\n7\t1\t2\n8\t-5\t3\tnan\n9\t1767225601\t4\t0.5' \
  "$(head -1 "$W/tsv/catalog.tsv" | cut -f1)" >"$W/bad.tsv"
seed events tsv-bad-fail '2' "$W/bad.tsv"
seed events tsv-bad-skip '\202' "$W/bad.tsv"
seed events tsv-zst-bad-skip '\207' "$W/bad.tsv"
seed events tsv-skip-1 '\202' "$W/tsv/logs/2026-01-01/part-0000.tsv"

# --- configs: the shipped one, and the ones used below
seed config demo "" "$SRC/cluster-configs/demo.ini"
cat >"$W/job.ini" <<INI
[input]
catalog = $W/msgpack.zst/catalog.tsv
logs = $W/msgpack.zst/logs/*/*.msgpack.zst
window_start = 2026-01-01
window_end = 2026-01-04
min_engagement = 0.25
[prompt]
template = $SRC/jobs/prompts/rag.tmpl
[llm]
concurrency = 4
timeout_ms = 5000
[gates]
min_exact_match = 0
min_coverage_ratio = 0
[output]
created_at = 2026-01-04
INI
seed config job "" "$W/job.ini"

# --- counts: ragtide aggregate
"$B/ragtide" aggregate --config "$W/job.ini" --out "$W/counts.cnt" >/dev/null 2>"$W/agg.err" ||
  { cat "$W/agg.err"; exit 1; }
seed counts file '\000' "$W/counts.cnt"
tail -c +9 "$W/counts.cnt" | zstd -dq >"$W/counts.body"
seed counts body '\001' "$W/counts.body"

# --- the simulated endpoint: a refresh (table + answer journal), responses
"$B/ragtide-llm-sim" --catalog "$W/msgpack.zst/catalog.tsv" --port 0 --port-file "$W/sim.port" --seed 3 \
  >"$W/sim.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 200); do [ -s "$W/sim.port" ] && break; sleep 0.05; done
URL="http://127.0.0.1:$(cat "$W/sim.port")"
"$B/ragtide" refresh --config "$W/job.ini" --set llm.base_url="$URL" --set output.table="$W/rag.rtt" \
  >/dev/null 2>"$W/ref.err" || { cat "$W/ref.err"; exit 1; }
"$B/ragtide" refresh --config "$W/job.ini" --set llm.base_url="$URL" --set output.table="$W/base.rtt" \
  --set prompt.mode=base --set output.candidates=2 --set llm.samples=2 --set llm.api=gemini \
  >/dev/null 2>"$W/ref2.err" || { cat "$W/ref2.err"; exit 1; }
for t in rag base; do
  seed table "$t" '\000' "$W/$t.rtt"
  # the structured form: u32 header_len, header, decompressed body
  hl=$(od -An -tu4 -j12 -N4 "$W/$t.rtt" | tr -d ' ')
  bl=$(od -An -tu8 -j16 -N8 "$W/$t.rtt" | tr -d ' ')
  { printf '\001'; dd if="$W/$t.rtt" bs=1 skip=12 count=4 status=none
    dd if="$W/$t.rtt" bs=1 skip=32 count="$hl" status=none
    tail -c +$((33 + hl)) "$W/$t.rtt" | head -c "$bl" | zstd -dq; } >"$OUT/table/$t-parts"
  seed answers "$t" '\000' "$W/$t.rtt.answers"
done
q() { curl -s -X POST -H 'Content-Type: application/json' --data-binary "$2" "$URL$1"; }
ENUM='["jazz, piano","hiking"]'
OA=/v1/chat/completions GM=/v1beta/models/ragtide-sim:generateContent
MSG='[{"role":"system","content":"be brief"},{"role":"user","content":"pair: a -> b\nnext?"}]'
q $OA "{\"model\":\"m\",\"messages\":$MSG}" >"$W/oa0"
q $OA "{\"model\":\"m\",\"messages\":$MSG,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"next\",\"strict\":true,\"schema\":{\"type\":\"object\",\"properties\":{\"cluster\":{\"type\":\"string\",\"enum\":$ENUM}},\"required\":[\"cluster\"],\"additionalProperties\":false}}}}" >"$W/oa1"
q $OA "{\"model\":\"m\",\"messages\":$MSG,\"guided_choice\":$ENUM}" >"$W/oa2"
q $OA "{\"messages\":[]}" >"$W/oa-err"
GC='[{"role":"user","parts":[{"text":"pair: a -> b\nnext?"}]}]'
q $GM "{\"contents\":$GC}" >"$W/gm0"
q $GM "{\"contents\":$GC,\"generationConfig\":{\"responseMimeType\":\"application/json\",\"responseSchema\":{\"type\":\"STRING\",\"enum\":$ENUM}}}" >"$W/gm1"
q $GM "{}" >"$W/gm-err"
seed openai off '0' "$W/oa0"; seed openai json_schema '1' "$W/oa1"; seed openai guided '2' "$W/oa2"
seed openai error '0' "$W/oa-err"
seed gemini off '0' "$W/gm0"; seed gemini json_schema '1' "$W/gm1"; seed gemini error '0' "$W/gm-err"
kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null || true
# error bodies of a failing and a malformed endpoint
"$B/ragtide-llm-sim" --catalog "$W/msgpack.zst/catalog.tsv" --port 0 --port-file "$W/sim2.port" --fail-429 0.5 \
  --malformed 0.5 --seed 4 >"$W/sim2.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 200); do [ -s "$W/sim2.port" ] && break; sleep 0.05; done
URL="http://127.0.0.1:$(cat "$W/sim2.port")"
for k in 1 2 3 4; do
  q $OA "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"p$k\"}]}" >"$W/oaf$k"
  q $GM "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"p$k\"}]}]}" >"$W/gmf$k"
  seed openai "fault-$k" '0' "$W/oaf$k"; seed gemini "fault-$k" '0' "$W/gmf$k"
done
for t in table catalog events config counts answers openai gemini; do
  printf '%-8s %3d seeds, %6d bytes\n' "$t" "$(ls "$OUT/$t" | wc -l)" "$(cat "$OUT/$t"/* | wc -c)"
done
