#!/usr/bin/env bash
# llama-server.sh — build, cache, start and stop llama.cpp's `llama-server` for the
# real-endpoint tests of the LLM client (tests/scripts/llama_server.sh).
#
# The source is the llama.cpp git bundle shipped inside the npm package node-llama-cpp
# (the only place this workplace can get llama.cpp from: npm is a reachable registry).
# The binary is cached OUTSIDE the repo, keyed by the package version, so it is built
# once per machine (~4 min on 2 cores) and reused by later runs:
#   ${RAGTIDE_LLAMA_CACHE:-/var/cache/ragtide/llama.cpp}/<version>/bin/llama-server
#
# Usage:
#   tools/llama-server.sh build              build (or reuse) the cached binary; prints its path
#   tools/llama-server.sh path               print the cached binary's path; exit 1 if not built
#   tools/llama-server.sh start MODEL DIR [llama-server args...]
#                                            serve MODEL on 127.0.0.1 on a free port; writes
#                                            DIR/port, DIR/pid, DIR/server.log; waits for /health
#   tools/llama-server.sh stop DIR           stop the server started with that DIR (by its PID)
set -euo pipefail

NLC_VERSION="${RAGTIDE_NODE_LLAMA_CPP_VERSION:-3.21.1}"
CACHE_ROOT="${RAGTIDE_LLAMA_CACHE:-/var/cache/ragtide/llama.cpp}"
CACHE="$CACHE_ROOT/node-llama-cpp-$NLC_VERSION"
BIN="$CACHE/bin/llama-server"
JOBS="${RAGTIDE_LLAMA_JOBS:-2}"

die() { echo "llama-server.sh: $*" >&2; exit 1; }

do_build() {
  if [[ -x "$BIN" ]]; then echo "$BIN"; return 0; fi
  mkdir -p "$CACHE" || die "cannot create $CACHE: run as a user that may write there or set RAGTIDE_LLAMA_CACHE"
  # One builder at a time: a second caller waits for the first and then reuses its binary.
  exec 9>"$CACHE/.lock"
  flock 9
  if [[ -x "$BIN" ]]; then echo "$BIN"; return 0; fi
  if ! command -v npm >/dev/null && [[ "$(id -u)" -eq 0 ]]; then
    echo "llama-server.sh: installing Debian's npm (needed once, to fetch llama.cpp's source)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
          --no-install-recommends npm >/dev/null 2>&1; }
  fi
  command -v npm >/dev/null || die "npm not found: apt-get install npm"
  command -v cmake >/dev/null || die "cmake not found: apt-get install cmake"
  command -v g++ >/dev/null || die "g++ not found: apt-get install g++"
  local work="$CACHE/work"
  rm -rf "$work"
  mkdir -p "$work"
  echo "llama-server.sh: fetching node-llama-cpp@$NLC_VERSION from npm" >&2
  (cd "$work" && npm pack --silent "node-llama-cpp@$NLC_VERSION" >/dev/null) ||
    die "npm pack node-llama-cpp@$NLC_VERSION failed (is the npm registry reachable?)"
  tar -xzf "$work/node-llama-cpp-$NLC_VERSION.tgz" -C "$work" package/llama/gitRelease.bundle \
    package/llama/llama.cpp.info.json ||
    die "the tarball has no package/llama/gitRelease.bundle: this version does not ship llama.cpp's source"
  git clone -q "$work/package/llama/gitRelease.bundle" "$work/src" 2>/dev/null ||
    die "cloning $work/package/llama/gitRelease.bundle failed"
  echo "llama-server.sh: building llama-server (-j$JOBS; a few minutes)" >&2
  cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DBUILD_SHARED_LIBS=OFF >"$CACHE/build.log" 2>&1 ||
    die "cmake configure failed; see $CACHE/build.log"
  cmake --build "$work/build" -j"$JOBS" --target llama-server >>"$CACHE/build.log" 2>&1 ||
    die "build failed; see $CACHE/build.log"
  mkdir -p "$CACHE/bin"
  cp "$work/build/bin/llama-server" "$BIN.tmp"
  (cd "$work/src" && git rev-parse HEAD) >"$CACHE/commit"
  cp "$work/package/llama/llama.cpp.info.json" "$CACHE/" 2>/dev/null || true
  mv "$BIN.tmp" "$BIN"
  rm -rf "$work"
  echo "$BIN"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

do_start() {
  local model="$1" dir="$2"; shift 2
  [[ -x "$BIN" ]] || die "$BIN is not built: run '$0 build' first"
  [[ -r "$model" ]] || die "model $model not readable"
  mkdir -p "$dir"
  local try port pid
  # A free port can be taken between the probe and the bind: retry a few times.
  for try in 1 2 3 4 5; do
    port=$(free_port)
    "$BIN" -m "$model" --host 127.0.0.1 --port "$port" -t 1 -c 2048 --parallel 2 "$@" \
      >"$dir/server.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    echo "$port" >"$dir/port"
    local i
    for i in $(seq 1 300); do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
        echo "$port"
        return 0
      fi
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    grep -q -i "address already in use\|bind" "$dir/server.log" || break
  done
  tail -n 20 "$dir/server.log" >&2
  die "llama-server did not become healthy (log above, full log: $dir/server.log)"
}

do_stop() {
  local dir="$1" pid
  [[ -f "$dir/pid" ]] || return 0
  pid=$(cat "$dir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

case "${1:-}" in
  build) do_build ;;
  path) [[ -x "$BIN" ]] && echo "$BIN" || exit 1 ;;
  start) [[ $# -ge 3 ]] || die "usage: $0 start MODEL DIR [args]"; shift; do_start "$@" ;;
  stop) [[ $# -ge 2 ]] || die "usage: $0 stop DIR"; do_stop "$2" ;;
  *) echo "usage: $0 build|path|start MODEL DIR [args]|stop DIR" >&2; exit 2 ;;
esac
