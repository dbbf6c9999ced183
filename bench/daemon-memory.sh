#!/usr/bin/env bash
# The daemons' memory over a thousand containers' lives: berthd +
# berth-lifecycled (the static builds scripts/install installs) beside
# dockerd + containerd, each in its own roots (bench/lib.sh). RSS of both
# daemons together, idle after start and again after every RUNS_STEP
# `run --rm --network none busybox true` up to RUNS, each taken 2 s after
# the last run. Goals (issue 19): ≤ 0.2× Docker's, and no growth: what a
# thousand finished containers leave behind in a daemon is a leak.
#   RUNS=1000 RUNS_STEP=250 bench/daemon-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=${RUNS:-1000}
RUNS_STEP=${RUNS_STEP:-250}
prepare_engines >/dev/null
rel=$PWD/target/release
DOCKER_CLI=$(command -v docker)
work=$(mktemp -d /tmp/berth-bench-memory.XXXXXX)
engines_start

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
both() { echo $(( $(rss_kib "$1") + $(rss_kib "$2") )); }
sample() {
  sleep 2
  local b d
  b=$(both "$berthd_pid" "$lc_pid")
  d=$(both "$dockerd_pid" "$ctd_pid")
  printf '| %s | %.1f MiB | %.1f MiB | %.2f |\n' "$1" "$(echo "$b / 1024" | bc -l)" \
    "$(echo "$d / 1024" | bc -l)" "$(echo "$b / $d" | bc -l)"
  last_b=$b
}

echo "| after | berthd + lifecycled | dockerd + containerd | ratio (goal ≤ 0.2) |"
echo "|---|---|---|---|"
sample "start (busybox imported)"
start_b=$last_b
warm_b=
done_runs=0
while [ "$done_runs" -lt "$RUNS" ]; do
  for _ in $(seq "$RUNS_STEP"); do
    $B run --rm --network none busybox true
    $D run --rm --network none busybox true
  done
  done_runs=$((done_runs + RUNS_STEP))
  sample "$done_runs runs"
  warm_b=${warm_b:-$last_b}
done
# The first containers fault in code and grow the heap to its working
# size; a leak is what keeps growing after that.
echo
echo "berth: warm-up (start to $RUNS_STEP runs) $((warm_b - start_b)) KiB;" \
  "growth from $RUNS_STEP to $RUNS runs $((last_b - warm_b)) KiB"
