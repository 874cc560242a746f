#!/usr/bin/env bash
# `ragtide import movielens` on the real ml-latest-small (read-only, never copied into the
# repo): 100,836 ratings of 610 users. Skips loudly (exit 77) where ../shared is absent.
# MovieLens: F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History
# and Context. ACM TiiS 5(4):19.
source "$RAGTIDE_SRC/tests/lib/common.sh"
ML="$RAGTIDE_SRC/../shared/data/ml-latest-small"
if [ ! -f "$ML/ratings.csv" ]; then
  echo "SKIP: $ML not found (MovieLens ml-latest-small is read from ../shared/data; nothing to test here)"
  exit 77
fi
export OMPI_MCA_pml=ob1
"$RT" import movielens --clusters primary-genre "$ML" "$T/ml" >"$T/out" || fail "import"
grep -qF "ratings 100836, users 610, movies 9742, clusters 19 (primary-genre)" "$T/out" || { cat "$T/out"; fail "counts"; }
[ "$(wc -l <"$T/ml/catalog.tsv")" -eq 19 ] || fail "catalog lines"
# every rating is an event in the shards: read them all back with the read stage
cat >"$T/agg.ini" <<INI
[input]
catalog = $T/ml/catalog.tsv
logs = $T/ml/logs/*/*.msgpack.zst
window_start = 1990-01-01
window_end = 2020-01-01
min_engagement = 0
INI
mpirun_q -n 2 "$RT" aggregate --config "$T/agg.ini" --out "$T/c.rtc" --set output.progress_s=0 2>"$T/log" \
  || { cat "$T/log"; fail "aggregate"; }
grep -qF "100836 events read, 100836 kept" "$T/log" || { cat "$T/log"; fail "events read back"; }
pass "ml-latest-small: 100,836 ratings, 610 users, 9,742 movies, 19 primary genres, every rating read back"
