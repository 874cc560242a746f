#!/usr/bin/env bash
# Real Slurm, started by this test: munged, slurmctld and slurmd (Debian's
# slurm-wlm and munge) on this node under a temp dir, with a generated
# slurm.conf of absolute paths. Against the local simulated endpoint:
#   1. jobs/refresh.sbatch publishes a valid table (srun --mpi=pmix);
#   2. `scontrol requeue` mid-LLM-stage: the job's second attempt resumes and
#      publishes, and the endpoint saw <= pairs + ranks x concurrency + retries
#      requests over both attempts;
#   3. the script's graceful-stop signal (scancel --signal=USR1 --batch, as
#      --signal=B:USR1@ delivers it) under RAGTIDE_LAUNCHER=mpirun: ragtide
#      exits 9, the script requeues the job itself, same bound.
# The resumed tables are byte-identical to the uninterrupted one (1).
# Needs root (munged runs as user munge, slurmd as root) and the packages
# (tools/setup-deps.sh installs them); otherwise prints SKIP and exits 77,
# which CTest reports as skipped (SKIP_RETURN_CODE), never as passed.
source "$RAGTIDE_SRC/tests/lib/common.sh"

skip() { echo "SKIP: slurm.sh: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root to run munged (as user munge) and slurmd"
for b in munged slurmctld slurmd sbatch srun squeue scontrol scancel sinfo runuser; do
  command -v "$b" >/dev/null || skip "$b not found: install slurm-wlm and munge (tools/setup-deps.sh as root)"
done
id munge >/dev/null 2>&1 || skip "no user munge (package munge)"

export OMPI_MCA_pml=ob1
S=$T/slurm M=$T/munge
mkdir -p "$S/state" "$S/spool" "$M"
chmod 711 "$T"                       # munged (user munge) reaches its socket dir
chown munge:munge "$M"; chmod 711 "$M"

DAEMONS=()                           # "name pid" of every daemon started here
stop_all() {
  local rc=$?
  if [ -n "${SLURM_CONF:-}" ] && [ -n "${SLURMCTLD_PID:-}" ]; then
    for j in $(squeue -h -o %i 2>/dev/null); do scancel -s KILL --full "$j" 2>/dev/null || true; done
    for _ in $(seq 40); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  local i name p
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do       # slurmd, slurmctld, munged
    read -r name p <<<"${DAEMONS[$i]}"
    kill -TERM "$p" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && { echo "stop: $name ($p) ignored SIGTERM: SIGKILL"; kill -KILL "$p" 2>/dev/null || true; }
    wait "$p" 2>/dev/null || true
  done
  # Job processes that outlived their job (slurmstepd, scripts, ranks): every
  # one carries this test's SLURM_CONF in its environment.
  local leftover=()
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = $$ ] && continue
    tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qx "SLURM_CONF=$S/slurm.conf" || continue
    case " ${DAEMONS[*]} ${SIM_PIDS[*]} " in *" $p "*) continue ;; esac
    leftover+=("$p")
  done
  [ ${#leftover[@]} -gt 0 ] && { echo "stop: killing leftover job processes: $(for p in "${leftover[@]}"; do printf "%s (%s) " "$p" "$(tr "\\0" " " </proc/$p/cmdline 2>/dev/null | cut -c1-60)"; done)"; kill -KILL "${leftover[@]}" 2>/dev/null || true; }
  cleanup
  exit "$rc"
}
trap stop_all EXIT
logs() { for f in "$S"/*.log "$M"/munged.log "$@"; do [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }; done; }
die() { logs "$@" >&2; fail "$1"; }

# --- munge -------------------------------------------------------------------
if command -v mungekey >/dev/null; then mungekey --create --keyfile="$M/munge.key"
else dd if=/dev/urandom of="$M/munge.key" bs=1 count=1024 status=none; fi
chown munge:munge "$M/munge.key"; chmod 600 "$M/munge.key"
runuser -u munge -- munged --socket="$M/munge.socket" --key-file="$M/munge.key" \
  --pid-file="$M/munged.pid" --log-file="$M/munged.log" --seed-file="$M/munged.seed" ||
  die "munged did not start"
for _ in $(seq 50); do [ -s "$M/munged.pid" ] && break; sleep 0.1; done
DAEMONS+=("munged $(cat "$M/munged.pid")")

# --- slurm.conf ----------------------------------------------------------------
read -r CTLD_PORT SLURMD_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("", 0))
print(*[x.getsockname()[1] for x in s])')
node=$(hostname -s)
nodeline=$(slurmd -C | head -1 | sed "s/^NodeName=[^ ]*/NodeName=$node/")
cat >"$S/slurm.conf" <<CONF
ClusterName=ragtidetest
SlurmctldHost=$node
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$M/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdLogFile=$S/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=pmix
JobRequeue=1
KillWait=30
ReturnToService=2
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$nodeline State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$S/slurm.conf
slurmctld -D -f "$SLURM_CONF" >"$S/slurmctld.out" 2>&1 &
SLURMCTLD_PID=$!; DAEMONS+=("slurmctld $SLURMCTLD_PID")
slurmd -D -f "$SLURM_CONF" >"$S/slurmd.out" 2>&1 &
DAEMONS+=("slurmd $!")
up=
for _ in $(seq 60); do
  [ "$(sinfo -h -n "$node" -o %T 2>/dev/null)" = idle ] && { up=1; break; }
  sleep 0.5
done
[ -n "$up" ] || die "node $node not idle after 30 s: $(sinfo 2>&1)" "$S/slurmctld.out" "$S/slurmd.out"
srun --mpi=list 2>&1 | grep -qw pmix || die "srun --mpi=list has no pmix"
pass "private Slurm up: $(sinfo -h -o '%P %D %T %c CPUs') (ctld port $CTLD_PORT, slurmd port $SLURMD_PORT)"

# --- helpers -------------------------------------------------------------------
job_field() { scontrol show job "$1" 2>/dev/null | grep -o "$2=[^ ]*" | head -1 | cut -d= -f2; }
# wait_state JOB REGEX SECONDS: until JobState matches.
wait_state() {
  local s=
  for _ in $(seq $(( $3 * 4 ))); do
    s=$(job_field "$1" JobState)
    [[ $s =~ ^($2)$ ]] && return 0
    sleep 0.25
  done
  die "job $1: state ${s:-gone}, expected $2 within $3 s" "$T/job-$1.out"
}
TERMINAL='COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED'
sim_requests() { curl -sf "$1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }
# submit NAME SBATCH-OPTS... -- ragtide args: prints the job id.
submit() {
  local name=$1; shift
  local opts=()
  while [ "$1" != -- ]; do opts+=("$1"); shift; done; shift
  sbatch --parsable --job-name="$name" --output="$T/job-%j.out" --chdir="$T" "${opts[@]}" \
    "$RAGTIDE_SRC/jobs/refresh.sbatch" "$T/job.ini" "$@"
}
# after_requeue JOB OUTDIR: the job is pending again after an interrupted
# attempt; keep that attempt's summary and let it start now (Slurm holds a
# requeued job for ~2 minutes: BeginTime).
after_requeue() {
  wait_state "$1" PENDING 150
  cp "$(last_summary "$2/table.rtt")" "$2/attempt1.summary.json"
  # Started while the last attempt's slurmstepd still exits, the new step of
  # the same id cannot bind its PMIx socket and srun fails (exit 0!): Slurm's
  # own delay prevents that; here, wait for every slurmstepd of the job to end.
  local p busy=1
  for _ in $(seq 120); do
    busy=
    for p in /proc/[0-9]*/cmdline; do
      tr '\0' ' ' 2>/dev/null <"$p" | grep -q "^slurmstepd: \[$1\." && { busy=1; break; }
    done
    [ -z "$busy" ] && break
    sleep 0.25
  done
  [ -z "$busy" ] || die "job $1: the last attempt's slurmstepd did not exit within 30 s"
  scontrol update JobId="$1" StartTime=now
}
# check_resumed JOB OUTDIR SIM_URL RANKS CONCURRENCY: published, valid, same
# table as the uninterrupted run, requests within the bound.
check_resumed() {
  local j=$1 out=$2 url=$3 ranks=$4 conc=$5
  [ "$(job_field "$j" JobState)" = COMPLETED ] || die "job $j: $(job_field "$j" JobState)" "$T/job-$j.out"
  [ "$(job_field "$j" Restarts)" -ge 1 ] || die "job $j was not requeued" "$T/job-$j.out"
  "$RT" validate "$out/table.rtt" >/dev/null || die "job $j: table invalid" "$T/job-$j.out"
  cmp -s "$out/table.rtt" "$T/out1/table.rtt" || die "job $j: table differs from the uninterrupted run's" "$T/job-$j.out"
  local req; req=$(sim_requests "$url")
  python3 - "$out/attempt1.summary.json" "$out/table.rtt.summary.json" "$req" "$ranks" "$conc" <<'PY' || die "job $j: summaries" "$T/job-$j.out"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
req, ranks, conc = map(int, sys.argv[3:6])
assert a["status"] == "interrupted" and a["exit_code"] == 9, ("attempt 1", a["status"], a["exit_code"])
assert b["status"] == "published" and b["exit_code"] == 0, ("attempt 2", b["status"], b["exit_code"])
pairs = b["stages"]["count"]["pairs_with_data"]
retries = a["stages"]["infer"]["retries"] + b["stages"]["infer"]["retries"]
bound = pairs + ranks * conc + retries
r1, r2 = a["stages"]["infer"]["requests"], b["stages"]["infer"]["requests"]
print(f"requests: {r1} + {r2} = {req} at the endpoint; pairs {pairs}, bound {bound} "
      f"(repeated {req - pairs})")
assert req <= bound, f"{req} requests > bound {bound}"
assert 0 < r1 < pairs, ("attempt 1 was not interrupted mid-LLM", r1, pairs)
PY
}

# --- data ------------------------------------------------------------------------
make_data 70 4000 6 11
start_sim plain "$T/data/catalog.tsv" --seed 5
write_config
sed -i 's/^concurrency = .*/concurrency = 8/' "$T/job.ini"
export RAGTIDE_BIN=$RT RAGTIDE_GRACE_S=5   # job.grace_s; mpirun's SIGKILL delay 15 s

# --- 1. plain run ------------------------------------------------------------------
t0=$SECONDS
j=$(submit rt-plain -N1 --ntasks-per-node=1 -c 2 -- --set "llm.base_url=$SIM_URL" --set "output.table=$T/out1/table.rtt")
mkdir -p "$T/out1"
wait_state "$j" "$TERMINAL" 90
[ "$(job_field "$j" JobState)" = COMPLETED ] || die "plain job $j: $(job_field "$j" JobState)" "$T/job-$j.out"
"$RT" validate "$T/out1/table.rtt" >/dev/null || die "plain job: table invalid" "$T/job-$j.out"
python3 - "$(last_summary "$T/out1/table.rtt")" "$j" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["status"] == "published" and s["exit_code"] == 0, s["status"]
# the summary records the Slurm job it ran in
assert s["slurm"] and s["slurm"]["job_id"] == sys.argv[2] and s["slurm"]["job_name"] == "rt-plain", s["slurm"]
assert s["stages"]["infer"]["requests"] == s["stages"]["count"]["pairs_with_data"], s["stages"]["infer"]
PY
grep -q "ragtide-job\[$j\]: exit 0: table published" "$T/job-$j.out" || die "plain job: no decision line" "$T/job-$j.out"
grep -q -- "--set job.threads=2" "$T/job-$j.out" || die "plain job: threads not from --cpus-per-task" "$T/job-$j.out"
pass "sbatch jobs/refresh.sbatch (srun --mpi=pmix, 1 rank x 2 threads) published a valid table in $((SECONDS - t0)) s"

# --- array: one table per line of a list file -----------------------------------------
t0=$SECONDS
cat >"$T/markets.txt" <<LIST
# two "markets" of the same data
$T/job.ini --set output.table=$T/arr/a.rtt
$T/job.ini --set output.table=$T/arr/b.rtt --set retrieval.mode=trend
LIST
mkdir -p "$T/arr"
j=$(RAGTIDE_CONFIG_LIST=$T/markets.txt sbatch --parsable --array=0-1 --output="$T/arr-%A_%a.out" --chdir="$T" \
    -N1 --ntasks-per-node=1 -c 1 "$RAGTIDE_SRC/jobs/refresh-array.sbatch" --set llm.api=retrieval)
for _ in $(seq 240); do [ -z "$(squeue -h -j "$j" 2>/dev/null)" ] && break; sleep 0.25; done
for m in a b; do
  "$RT" validate "$T/arr/$m.rtt" >/dev/null || die "array: table $m missing or invalid" "$T/arr-${j}_0.out" "$T/arr-${j}_1.out"
done
grep -q "array task 1 of job $j: $T/job.ini --set output.table=$T/arr/b.rtt" "$T/arr-${j}_1.out" ||
  die "array: task 1 did not run line 1" "$T/arr-${j}_1.out"
pass "jobs/refresh-array.sbatch: 2 tasks published 2 tables in $((SECONDS - t0)) s"

# --- nightly: queues the next link first, once; input.window_days -------------------
t0=$SECONDS
"$GEN" --clusters 30 --users 400 --days 6 --seed 3 --start "$(date -u -d '6 days ago' +%F)" --out "$T/recent" >/dev/null
cat >"$T/nightly.ini" <<INI
[input]
catalog = $T/recent/catalog.tsv
logs = $T/recent/logs/*/*.msgpack.zst
[prompt]
template = $RAGTIDE_SRC/jobs/prompts/rag.tmpl
[llm]
api = retrieval
[output]
table = $T/nightly/table.rtt
INI
mkdir -p "$T/nightly"
nightly() {
  RAGTIDE_NIGHTLY_AT=$1 RAGTIDE_WINDOW_DAYS=3 sbatch --parsable --job-name=rt-nightly --output="$T/nightly-%j.out" \
    --chdir="$T" -N1 --ntasks-per-node=1 -c 1 "$RAGTIDE_SRC/jobs/nightly.sbatch" "$T/nightly.ini"
}
at=$(date -u -d '+2 hours' +%H:%M)
j=$(nightly "$at")
wait_state "$j" "$TERMINAL" 60
[ "$(job_field "$j" JobState)" = COMPLETED ] || die "nightly $j: $(job_field "$j" JobState)" "$T/nightly-$j.out"
"$RT" validate "$T/nightly/table.rtt" >/dev/null || die "nightly: table invalid" "$T/nightly-$j.out"
next=$(squeue -h --name=rt-nightly --states=PENDING -o %i)
[ "$(echo "$next" | wc -w)" -eq 1 ] || die "nightly: expected one pending next link, got '$next'" "$T/nightly-$j.out"
nt=$(date -u -d "today $at" +%s); [ "$nt" -gt "$(date +%s)" ] || nt=$(date -u -d "tomorrow $at" +%s)
want=$(date -d "@$nt" +%Y-%m-%dT%H:%M)
[ "$(job_field "$next" StartTime | cut -c1-16)" = "$want" ] ||
  die "nightly: next link $next starts $(job_field "$next" StartTime), expected $want" "$T/nightly-$j.out"
python3 - "$(last_summary "$T/nightly/table.rtt")" <<'PY' || die "nightly: summary" "$T/nightly-$j.out"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["status"] == "published", s["status"]
PY
j2=$(nightly "$at")                  # a second chain (or a requeued attempt) adds no link
wait_state "$j2" "$TERMINAL" 60
grep -q "next run already queued (pending rt-nightly: $next" "$T/nightly-$j2.out" || die "nightly: no duplicate guard" "$T/nightly-$j2.out"
[ "$(squeue -h --name=rt-nightly --states=PENDING -o %i)" = "$next" ] || die "nightly: duplicate chain"
scancel "$next"
pass "jobs/nightly.sbatch: published (window_days=3), queued one next link for $want, no duplicate, in $((SECONDS - t0)) s"

# --- 2. scontrol requeue mid-LLM-stage ---------------------------------------------
# wait_llm URL: until the endpoint has answered some requests.
wait_llm() {
  for _ in $(seq 240); do
    [ "$(sim_requests "$1")" -gt 200 ] && return 0
    sleep 0.25
  done
  die "LLM stage did not start within 60 s"
}
t0=$SECONDS
start_sim requeue "$T/data/catalog.tsv" --seed 5 --latency-ms 50
url2=$SIM_URL
mkdir -p "$T/out2"
j=$(submit rt-requeue -N1 --ntasks-per-node=2 -c 1 -- --set "llm.base_url=$url2" --set "output.table=$T/out2/table.rtt")
wait_state "$j" RUNNING 60
wait_llm "$url2"
scontrol requeue "$j"
after_requeue "$j" "$T/out2"
wait_state "$j" "$TERMINAL" 120
check_resumed "$j" "$T/out2" "$url2" 2 8
grep -q "not requeueing" "$T/job-$j.out" || die "requeue: the script did not leave the decision to Slurm" "$T/job-$j.out"
pass "scontrol requeue mid-LLM: resumed and published in $((SECONDS - t0)) s"

# --- 3. graceful-stop signal to the batch shell (mpirun) ------------------------
t0=$SECONDS
start_sim signal "$T/data/catalog.tsv" --seed 5 --latency-ms 50
url3=$SIM_URL
mkdir -p "$T/out3"
j=$(RAGTIDE_LAUNCHER=mpirun submit rt-signal -N1 --ntasks-per-node=2 -c 1 -- --set "llm.base_url=$url3" --set "output.table=$T/out3/table.rtt")
wait_state "$j" RUNNING 60
wait_llm "$url3"
scancel --signal=USR1 --batch "$j"
after_requeue "$j" "$T/out3"
grep -q "got SIGUSR1: forwarding SIGUSR1 to mpirun" "$T/job-$j.out" || die "signal: not forwarded" "$T/job-$j.out"
grep -q "exit 9: interrupted by SIGUSR1, resumable: scontrol requeue $j" "$T/job-$j.out" || die "signal: no requeue decision" "$T/job-$j.out"
wait_state "$j" "$TERMINAL" 120
check_resumed "$j" "$T/out3" "$url3" 2 8
pass "SIGUSR1 to the batch shell (mpirun): exit 9, requeued by the script, resumed and published in $((SECONDS - t0)) s"
