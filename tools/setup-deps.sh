#!/usr/bin/env bash
# Install the Debian 12 packages ragtide needs to build, test and run.
# As root: installs what is missing with apt-get. Otherwise: prints the exact
# command and exits 1 if anything is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  openmpi-bin libopenmpi-dev           # MPI runtime and headers
  libcurl4-openssl-dev                 # LLM endpoint client
  libmsgpack-dev libzstd-dev zstd      # shard, table and counts formats
  libjansson-dev libinih-dev           # JSON, INI config
  libxxhash-dev                        # table and journal checksums
  libmicrohttpd-dev                    # ragtide-llm-sim (local endpoint)
  libcriterion-dev python3 curl        # tests, oracle, endpoint checks
  slurm-wlm munge                      # tests/scripts/slurm.sh starts a private single-node Slurm
                                       # (it does not use the packages' own services)
  gnuplot-nox                          # plots of tools/experiments/cadence.sh
  clang libclang-rt-14-dev             # the fuzz targets (libFuzzer, ASan, UBSan): tools/fuzz.sh
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "ragtide needs these Debian packages: ${missing[*]}" >&2
  echo "run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "setup-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
