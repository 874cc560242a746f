#!/usr/bin/env bash
# The cadence experiment (issue 12, paper Figure 3): see tools/experiments/cadence.py for the
# variants, files and options. usage: cadence.sh DATA START STEP_DAYS STEPS OUT [options]
exec python3 "$(dirname "$0")/cadence.py" "$@"
