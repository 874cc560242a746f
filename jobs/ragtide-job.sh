# shellcheck shell=bash
# Sourced by jobs/*.sbatch (not run on its own): launches `ragtide refresh`
# inside a Slurm allocation, forwards the graceful-stop signal to it, and maps
# its exit code to "requeue" or "stop". Every decision is one log line on
# stderr ("ragtide-job: ..."), which lands in the job's output file.
#
# Environment (all optional except the config):
#   RAGTIDE_CONFIG     the job's INI file (or the script's first argument)
#   RAGTIDE_BIN        the ragtide binary: default `ragtide` on PATH, else
#                      $SLURM_SUBMIT_DIR/build/ragtide
#   RAGTIDE_LAUNCHER   srun (default) or mpirun
#   RAGTIDE_ARGS       extra ragtide arguments, split on blanks
#                      (e.g. "--set llm.base_url=http://gpu7:8000 --force")
#   RAGTIDE_GRACE_S    passed as job.grace_s when set; mpirun's SIGKILL delay
#                      is derived from it (default 30, ragtide's default)
#   RAGTIDE_MAX_REQUEUES  stop requeueing after this many restarts (default 20)
#
# Launchers. srun (default) runs `srun --mpi=pmix`: Debian's Open MPI is built
# with PMIx only (no PMI-1/PMI-2), so plain `srun` cannot wire the ranks up;
# and srun forwards the SIGUSR1/SIGTERM it receives to every task itself, with
# no orted in between. mpirun: Open MPI 4.1 forwards SIGUSR1 to the ranks as
# is (ess_base_forward_signals includes it) but answers SIGTERM/SIGINT with
# SIGTERM to the ranks and SIGKILL `odls_base_sigkill_timeout` seconds later
# (default 1 s), so this forwards SIGUSR1 and exports that timeout as
# grace + 10 s. Measured cost: when ranks exit non-zero (9 included), mpirun
# "aborts the job" and waits 2 x that timeout before it exits itself (80 s
# with the default grace of 30 s); srun has no such delay.
# Threads per rank: --cpus-per-task, as job.threads.
#
# Exit codes (README "Running on Slurm"): 9 (interrupted, resumable) requeues
# the job with `scontrol requeue` when the stop was SIGUSR1 (our --signal) or
# reached the ranks only; when the batch shell got SIGTERM/SIGINT (scancel,
# scontrol requeue, preemption) Slurm is already ending or requeueing the job
# and the script only exits. Everything else (0, 5 gate, 10 lock busy,
# 11 stale, 4 endpoint, ...) is the job's exit code, never requeued. A
# requeued job restarts this script with SLURM_RESTART_COUNT set, and the same
# command resumes from the answer journal.

rt_log() { printf '%s ragtide-job[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SLURM_JOB_ID:-local}" "$*" >&2; }

# rt_setup [CONFIG] [ragtide args...]: fills RT_CMD (launcher + ragtide refresh ...).
rt_setup() {
  if [ -z "${RAGTIDE_CONFIG:-}" ] && [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    RAGTIDE_CONFIG=$1; shift
  fi
  [ -n "${RAGTIDE_CONFIG:-}" ] || { rt_log "no config: set RAGTIDE_CONFIG or pass the INI as the first argument"; exit 2; }
  if [ -z "${RAGTIDE_BIN:-}" ]; then
    if command -v ragtide >/dev/null; then RAGTIDE_BIN=$(command -v ragtide)
    elif [ -x "${SLURM_SUBMIT_DIR:-.}/build/ragtide" ]; then RAGTIDE_BIN=${SLURM_SUBMIT_DIR:-.}/build/ragtide
    else rt_log "no ragtide binary: set RAGTIDE_BIN"; exit 2; fi
  fi
  local cpus=${SLURM_CPUS_PER_TASK:-}
  local extra=()
  # shellcheck disable=SC2206  # RAGTIDE_ARGS is split on blanks on purpose
  [ -n "${RAGTIDE_ARGS:-}" ] && extra=(${RAGTIDE_ARGS})
  local rt=("$RAGTIDE_BIN" refresh --config "$RAGTIDE_CONFIG")
  [ -n "$cpus" ] && rt+=(--set "job.threads=$cpus")
  [ -n "${RAGTIDE_GRACE_S:-}" ] && rt+=(--set "job.grace_s=$RAGTIDE_GRACE_S")
  rt+=("${extra[@]}" "$@")

  RT_LAUNCHER=${RAGTIDE_LAUNCHER:-srun}
  case $RT_LAUNCHER in
    srun)
      # srun in 22.05 does not inherit --cpus-per-task from sbatch: pass it.
      RT_CMD=(srun --mpi=pmix --kill-on-bad-exit=1 ${cpus:+--cpus-per-task=$cpus} "${rt[@]}") ;;
    mpirun)
      local ppn=${SLURM_NTASKS_PER_NODE:-}
      [ -n "$ppn" ] || ppn=$(( ${SLURM_NTASKS:-1} / ${SLURM_JOB_NUM_NODES:-1} ))
      [ "$ppn" -ge 1 ] 2>/dev/null || ppn=1
      export OMPI_MCA_odls_base_sigkill_timeout=${OMPI_MCA_odls_base_sigkill_timeout:-$(( ${RAGTIDE_GRACE_S:-30} + 10 ))}
      RT_CMD=(mpirun --map-by "ppr:$ppn:node:PE=${cpus:-1}" --bind-to core "${rt[@]}") ;;
    *) rt_log "RAGTIDE_LAUNCHER=$RT_LAUNCHER: expected srun or mpirun"; exit 2 ;;
  esac
}

RT_STOP_SIG=   # first stop signal the batch shell received
RT_CHILD=
rt_on_signal() {
  local sig=$1
  if [ -n "$RT_STOP_SIG" ]; then
    # Slurm signals every process of the job (shell, launcher, ranks) on
    # scancel/requeue; one forwarded stop is enough, the rest only log.
    rt_log "got SIG$sig again: already stopping (after SIG$RT_STOP_SIG), not forwarding"
    return
  fi
  RT_STOP_SIG=$sig
  if [ -n "$RT_CHILD" ] && kill -0 "$RT_CHILD" 2>/dev/null; then
    rt_log "got SIG$sig: forwarding SIGUSR1 to $RT_LAUNCHER (pid $RT_CHILD) for a graceful stop"
    kill -USR1 "$RT_CHILD" 2>/dev/null || true
  else
    rt_log "got SIG$sig before ragtide started"
  fi
}

# rt_run: runs RT_CMD in the background and waits until it really exited
# (a trapped signal makes `wait` return early). Sets RT_RC.
rt_run() {
  trap 'rt_on_signal USR1' USR1
  trap 'rt_on_signal TERM' TERM
  trap 'rt_on_signal INT' INT
  rt_log "attempt $(( ${SLURM_RESTART_COUNT:-0} + 1 )) on ${SLURM_JOB_NODELIST:-$(hostname -s)}: ${RT_CMD[*]}"
  "${RT_CMD[@]}" &
  RT_CHILD=$!
  RT_RC=0
  while kill -0 "$RT_CHILD" 2>/dev/null; do wait "$RT_CHILD"; RT_RC=$?; done
  # The last wait may have been cut short by a signal after the child had
  # already exited: ask once more (127 = already collected above).
  local r=0; wait "$RT_CHILD" 2>/dev/null || r=$?
  [ "$r" -ne 127 ] && RT_RC=$r
  [ -n "$RT_STOP_SIG" ] && [ "$RT_RC" -eq 0 ] && rt_log "ragtide finished before the stop took effect"
  return 0
}

# rt_finish: the exit-code policy; never returns.
rt_finish() {
  trap - USR1 TERM INT
  case $RT_RC in
    0)  rt_log "exit 0: table published"; exit 0 ;;
    9)
      if [ "$RT_STOP_SIG" = TERM ] || [ "$RT_STOP_SIG" = INT ]; then
        rt_log "exit 9: interrupted by SIG$RT_STOP_SIG (scancel, requeue or preemption): Slurm decides, not requeueing"
        exit 9
      fi
      if [ -z "${SLURM_JOB_ID:-}" ]; then rt_log "exit 9: interrupted, resumable: not under Slurm, rerun the same command"; exit 9; fi
      local max=${RAGTIDE_MAX_REQUEUES:-20}
      if [ "${SLURM_RESTART_COUNT:-0}" -ge "$max" ]; then
        rt_log "exit 9: interrupted, but already restarted ${SLURM_RESTART_COUNT} times (RAGTIDE_MAX_REQUEUES=$max): not requeueing"
        exit 9
      fi
      rt_log "exit 9: interrupted${RT_STOP_SIG:+ by SIG$RT_STOP_SIG}, resumable: scontrol requeue $SLURM_JOB_ID"
      scontrol requeue "$SLURM_JOB_ID" || { rt_log "scontrol requeue failed: resubmit by hand, the run resumes"; exit 9; }
      exit 0 ;;
    5)  rt_log "exit 5: quality gate halted the table: not published, not requeueing"; exit 5 ;;
    10) rt_log "exit 10: another run holds the table's lock: not requeueing"; exit 10 ;;
    11) rt_log "exit 11: the served table's window ends later than this run's: not published (--force overrides), not requeueing"; exit 11 ;;
    4)  rt_log "exit 4: endpoint failed: not published, not requeueing"; exit 4 ;;
    *)  rt_log "exit $RT_RC: failed (ragtide's log above says why; README 'Exit codes'): not requeueing"; exit "$RT_RC" ;;
  esac
}
