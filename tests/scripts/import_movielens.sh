#!/usr/bin/env bash
# `ragtide import movielens` on the hand-written fixtures of both layouts
# (tests/fixtures/movielens-{csv,100k}): the catalog and every shard, exactly;
# the msgpack.zst shards decode (through `ragtide aggregate`) to the same
# counts as the TSV ones; bad input names file:line.
source "$RAGTIDE_SRC/tests/lib/common.sh"
FX="$RAGTIDE_SRC/tests/fixtures"
export OMPI_MCA_pml=ob1

# CSV layout, genre sets: ids 1..N in the order of the sorted descriptions
"$RT" import movielens --format tsv "$FX/movielens-csv" "$T/csv" >"$T/out" || fail "import csv"
grep -qF "ratings 6, users 2, movies 5, clusters 4 (genre-set), days 2, first 2023-11-14, last 2023-11-15" "$T/out" \
  || { cat "$T/out"; fail "csv: summary line"; }
grep -qF "Harper and Joseph A. Konstan. 2015" "$T/out" || fail "csv: no citation"
printf '1\t(no genres listed)\n2\tAction, Sci-Fi\n3\tComedy\n4\tDrama, Romance\n' >"$T/want"
cmp "$T/csv/catalog.tsv" "$T/want" || { cat "$T/csv/catalog.tsv"; fail "csv: catalog"; }
[ "$(cd "$T/csv" && find logs -type f | sort | tr '\n' ' ')" = \
  "logs/2023-11-14/part-0000.tsv logs/2023-11-15/part-0000.tsv " ] || fail "csv: shard files"
# engagement = rating / 5; within a day by (ts, user, cluster)
printf '5\t1699999000\t4\t0.9\n5\t1700000000\t4\t0.8\n7\t1700000050\t4\t0.4\n5\t1700000100\t2\t0.7\n' >"$T/want"
cmp "$T/csv/logs/2023-11-14/part-0000.tsv" "$T/want" || { cat "$T/csv/logs/2023-11-14/part-0000.tsv"; fail "csv: day 1"; }
printf '5\t1700086400\t3\t1\n7\t1700090000\t1\t0.1\n' >"$T/want"
cmp "$T/csv/logs/2023-11-15/part-0000.tsv" "$T/want" || fail "csv: day 2"
pass "CSV layout, genre-set: catalog and shards exact"

# primary-genre: a movie's first genre as listed
"$RT" import movielens --clusters primary-genre --format tsv "$FX/movielens-csv" "$T/csvp" >/dev/null || fail "csv primary"
printf '1\t(no genres listed)\n2\tComedy\n3\tDrama\n4\tRomance\n5\tSci-Fi\n' >"$T/want"
cmp "$T/csvp/catalog.tsv" "$T/want" || { cat "$T/csvp/catalog.tsv"; fail "csv primary: catalog"; }
cut -f3 "$T/csvp/logs/2023-11-14/part-0000.tsv" | tr '\n' ' ' >"$T/got"
[ "$(cat "$T/got")" = "4 3 4 5 " ] || fail "csv primary: clusters of day 1: $(cat "$T/got")"
pass "CSV layout, primary-genre"

# the msgpack.zst shards hold the same events: aggregate both, same counts (user 5 keeps
# Drama,Romance (x2, one run), Action,Sci-Fi, Comedy: the triple 4 2 3 on 2023-11-15)
"$RT" import movielens "$FX/movielens-csv" "$T/csvz" >/dev/null || fail "csv msgpack.zst"
cmp "$T/csvz/catalog.tsv" "$T/csv/catalog.tsv" || fail "msgpack.zst: catalog differs"
[ -s "$T/csvz/logs/2023-11-14/part-0000.msgpack.zst" ] || fail "msgpack.zst: no shard"
cat >"$T/agg.ini" <<INI
[input]
catalog = $T/csv/catalog.tsv
logs = $T/csv/logs/*/*.tsv
window_start = 2023-11-01
window_end = 2023-12-01
INI
mpirun_q -n 2 "$RT" aggregate --config "$T/agg.ini" --out "$T/a.tsv" --format tsv 2>"$T/log" || { cat "$T/log"; fail "aggregate tsv"; }
mpirun_q -n 2 "$RT" aggregate --config "$T/agg.ini" --set "input.logs=$T/csvz/logs/*/*.msgpack.zst" \
  --out "$T/z.tsv" --format tsv 2>"$T/log" || { cat "$T/log"; fail "aggregate msgpack.zst"; }
printf '4\t2\t3\t2023-11-15\t1\n' >"$T/want"
cmp "$T/a.tsv" "$T/want" || { cat "$T/a.tsv"; fail "counts from the TSV shards"; }
cmp "$T/z.tsv" "$T/want" || { cat "$T/z.tsv"; fail "counts from the msgpack.zst shards"; }
pass "msgpack.zst shards decode to the same events (same counts)"

# 100K layout: u.genre gives the flags' order; genre-set and primary-genre
"$RT" import movielens --format tsv "$FX/movielens-100k" "$T/old" >"$T/out" || fail "import 100k"
grep -qF "(100K layout): ratings 4, users 2, movies 3, clusters 3 (genre-set), days 2, first 1997-12-04, last 1997-12-05" \
  "$T/out" || { cat "$T/out"; fail "100k: summary line"; }
printf '1\tAction\n2\tComedy, Drama\n3\tunknown\n' >"$T/want"
cmp "$T/old/catalog.tsv" "$T/want" || { cat "$T/old/catalog.tsv"; fail "100k: catalog"; }
printf '3\t881250949\t2\t1\n3\t881251000\t1\t0.6\n' >"$T/want"
cmp "$T/old/logs/1997-12-04/part-0000.tsv" "$T/want" || { cat "$T/old/logs/1997-12-04/part-0000.tsv"; fail "100k: day 1"; }
printf '4\t881300000\t3\t0.8\n3\t881340000\t2\t0.2\n' >"$T/want"
cmp "$T/old/logs/1997-12-05/part-0000.tsv" "$T/want" || fail "100k: day 2"
"$RT" import movielens --clusters primary-genre --format tsv "$FX/movielens-100k" "$T/oldp" >/dev/null || fail "100k primary"
printf '1\tAction\n2\tComedy\n3\tunknown\n' >"$T/want"
cmp "$T/oldp/catalog.tsv" "$T/want" || { cat "$T/oldp/catalog.tsv"; fail "100k primary: catalog"; }
pass "100K layout (u.data, u.item, u.genre): catalog and shards exact"

# bad input: file:line, exit 3; a directory of neither layout; usage errors exit 2
mkdir -p "$T/bad" && cp "$FX/movielens-csv/movies.csv" "$T/bad/"
printf 'userId,movieId,rating,timestamp\n5,10,4.0,1700000000\n5,99,4.0,1700000001\n' >"$T/bad/ratings.csv"
expect_exit 3 "$RT" import movielens "$T/bad" "$T/badout"
expect_err "$T/bad/ratings.csv:3: movie 99 is not in the movie list"
printf 'userId,movieId,rating,timestamp\n5,10,four,1700000000\n' >"$T/bad/ratings.csv"
expect_exit 3 "$RT" import movielens "$T/bad" "$T/badout"
expect_err "$T/bad/ratings.csv:2: expected user,item,rating (0..5),timestamp"
expect_exit 3 "$RT" import movielens "$T" "$T/badout"
expect_err "holds neither MovieLens layout"
expect_exit 2 "$RT" import movielens --clusters title "$FX/movielens-csv" "$T/x"
expect_exit 2 "$RT" import netflix "$FX/movielens-csv" "$T/x"
"$RT" help import | grep -qF "Harper and Joseph A. Konstan. 2015" || fail "help: no citation"
pass "bad input -> exit 3 with file:line; usage -> exit 2"
echo "import_movielens: all checks passed"
