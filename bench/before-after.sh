#!/usr/bin/env bash
# What a change costs the fast paths: two berth stacks in one run, one
# from the release binaries of BASE (built in a worktree of this
# repository, cached under $CACHE), one from this tree, each with its own
# roots, sockets, bridge and cgroup parent, measured in alternation:
#   1. `run --rm --network none busybox true` latency (hyperfine, median)
#   2. `ps -a` with $CONTAINERS containers
#   3. engine start (after a SIGKILL) to `ps` answering, with $LIVE
#      running containers (best of $RESTARTS)
# and prints this tree's figure over BASE's. The crash-consistency work
# (issue 15) must stay within 5% on 1 and 2:
#   BASE=80620ba~1 bench/before-after.sh
# Not a test: nothing asserts. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-80620ba~1}
RUNS=${RUNS:-30}
CONTAINERS=${CONTAINERS:-1000}
LIVE=${LIVE:-100}
RESTARTS=${RESTARTS:-5}
CACHE=${CACHE:-/var/tmp/berth-before-after}

. bench/lib.sh
scripts/deps
command -v hyperfine >/dev/null || { echo "hyperfine is missing (scripts/deps installs it)" >&2; exit 1; }
base_rev=$(git rev-parse --short "$BASE")
cargo build --release --workspace -q
new=$PWD/target/release

# BASE's binaries, built once per revision.
old=$CACHE/target/release
if [ "$(cat "$CACHE/built" 2>/dev/null)" != "$base_rev" ]; then
  echo "== building $base_rev in $CACHE (once)"
  mkdir -p "$CACHE"
  git worktree remove --force "$CACHE/src" 2>/dev/null || rm -rf "$CACHE/src"
  git worktree prune
  git worktree add --detach "$CACHE/src" "$base_rev" >/dev/null
  CARGO_TARGET_DIR=$CACHE/target cargo build --release --workspace -q --manifest-path "$CACHE/src/Cargo.toml"
  git worktree remove --force "$CACHE/src"
  echo "$base_rev" > "$CACHE/built"
fi

work=$(mktemp -d /tmp/berth-bench-before-after.XXXXXX)
pids=()
cleanup() {
  set +e
  for s in old new; do
    cli=${s^^}
    [ -n "${!cli:-}" ] && ${!cli} ps -aq 2>/dev/null | xargs -r -n 50 ${!cli} rm -f >/dev/null 2>&1
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for f in "$work"/*/lc-state/tasks/*/*/shim.pid; do
    [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
  done
  for f in /sys/fs/cgroup/*/berth-bench-ba-*/cgroup.procs /sys/fs/cgroup/*/berth-bench-ba-*/*/cgroup.procs; do
    [ -f "$f" ] && xargs -r kill -9 < "$f" 2>/dev/null
  done
  sleep 0.5
  grep -E " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for c in /sys/fs/cgroup/*/berth-bench-ba-* /sys/fs/cgroup/berth-bench-ba-*; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  ip link delete bbaold0 2>/dev/null
  ip link delete bbanew0 2>/dev/null
  [ -f "$work/iptables.before" ] && iptables-restore < "$work/iptables.before"
  rm -rf "$work"
}
trap cleanup EXIT
busybox_tar "$work"
iptables-save > "$work/iptables.before"

# One berth stack: $1 name (old|new), $2 binary dir, $3 subnet octet.
stack() {
  local name=$1 bin=$2 net=$3 dir=$work/$1
  mkdir -p "$dir"
  printf 'cgroup_parent = "berth-bench-ba-%s"\n' "$name" > "$dir/lc.toml"
  printf '{"cgroup-parent": "berth-bench-ba-%s", "bridge": "bba%s0", "bip": "10.198.%s.1/24"}\n' \
    "$name" "$name" "$net" > "$dir/daemon.json"
  "$bin/berth-lifecycled" --config "$dir/lc.toml" --address "$dir/lc.sock" \
    --root "$dir/lc-root" --state "$dir/lc-state" --log-level warn >/dev/null 2>>"$dir/lc.log" &
  pids+=("$!")
  wait_for test -S "$dir/lc.sock"
  start_engine "$name"
  local cli="$bin/berth -H unix://$dir/berthd.sock"
  wait_for $cli version
  $cli import --change 'CMD ["sh"]' "$work/busybox.tar" busybox:latest >/dev/null
  printf -v "${name^^}" '%s' "$cli"
}
# (Re)starts the engine of stack $1; its pid in engine_<name>.
start_engine() {
  local name=$1 dir=$work/$1 bin
  if [ "$name" = old ]; then bin=$old; else bin=$new; fi
  "$bin/berthd" --config-file "$dir/daemon.json" -H "unix://$dir/berthd.sock" \
    --data-root "$dir/engine" --exec-root "$dir/engine-run" \
    --lifecycled "$dir/lc.sock" --log-level warn >/dev/null 2>>"$dir/berthd.log" &
  pids+=("$!")
  printf -v "engine_$name" '%s' "$!"
}
stack old "$old" 1
stack new "$new" 2
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1])/float(sys.argv[2])))" "$1" "$2"; }

echo "== 1. run --rm --network none busybox true ($RUNS runs each)"
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/run.json" \
  -n base "$OLD run --rm --network none busybox true" \
  -n this "$NEW run --rm --network none busybox true" >/dev/null
read -r run_old run_new < <(median_ms "$work/run.json")

echo "== 2. ps -a with $CONTAINERS containers"
seq "$CONTAINERS" | xargs -P 4 -I{} $OLD create --network none busybox true >/dev/null
seq "$CONTAINERS" | xargs -P 4 -I{} $NEW create --network none busybox true >/dev/null
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/ps.json" \
  -n base "$OLD ps -a" -n this "$NEW ps -a" >/dev/null
read -r ps_old ps_new < <(median_ms "$work/ps.json")
$OLD ps -aq | xargs -r -n 100 $OLD rm >/dev/null
$NEW ps -aq | xargs -r -n 100 $NEW rm >/dev/null

echo "== 3. engine start to ps with $LIVE live containers (best of $RESTARTS)"
seq "$LIVE" | xargs -P 4 -I{} $OLD run -d --network none busybox sleep 3600 >/dev/null
seq "$LIVE" | xargs -P 4 -I{} $NEW run -d --network none busybox sleep 3600 >/dev/null
restart_ms() { # stack name, client; the best time in $best
  local pidvar="engine_$1" t0 t1 ms
  best=""
  for _ in $(seq "$RESTARTS"); do
    kill -9 "${!pidvar}"; wait "${!pidvar}" 2>/dev/null || true
    t0=$(date +%s%N)
    start_engine "$1"
    until $2 ps -q >/dev/null 2>&1; do sleep 0.005; done
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
    sleep 1
  done
}
restart_ms old "$OLD"; start_old=$best
restart_ms new "$NEW"; start_new=$best
live_old=$($OLD ps -q | wc -l); live_new=$($NEW ps -q | wc -l)

cat <<TXT

| measure | base ($base_rev) | this tree ($(git rev-parse --short HEAD)$(git diff --quiet || echo +changes)) | this / base |
|---|---|---|---|
| run --rm --network none busybox true, median | $run_old ms | $run_new ms | $(ratio "$run_new" "$run_old") |
| ps -a with $CONTAINERS containers, median | $ps_old ms | $ps_new ms | $(ratio "$ps_new" "$ps_old") |
| engine start to ps, $LIVE live (base $live_old, this $live_new up) | $start_old ms | $start_new ms | $(ratio "$start_new" "$start_old") |
TXT
