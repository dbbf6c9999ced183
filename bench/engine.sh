#!/usr/bin/env bash
# berthd + berth-lifecycled beside dockerd + containerd (Debian's docker.io),
# in one run, each stack in its own roots and sockets under a temp dir:
#   1. `run --rm --network none busybox true` latency (hyperfine, median)
#   2. `ps -a` with $CONTAINERS containers
#   3. idle RSS of the engine and its lifecycle daemon
#   4. engine start (after a SIGKILL) to `ps` answering, with $LIVE running
#      containers (both with live restore)
#   5. `stats --no-stream` over those $LIVE containers
#   6. $STREAM_MIB MiB piped through `run -i --rm busybox cat` (throughput)
#   7. the same through `exec -i` into a running container
#   8. `run --rm busybox true` on the default bridge against --network none:
#      what network setup adds to a start
#   9. $PORT_MIB MiB downloaded from a container through a published port
#      at 127.0.0.1 (Docker: its default userland proxy and iptables)
#  10. the installed size of the binaries (bench/installed-size.sh)
# and prints berth's figure over Docker's. Not a test: nothing asserts.
# Run as root; installs docker.io (Debian) if dockerd is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
CONTAINERS=${CONTAINERS:-1000}
LIVE=${LIVE:-100}
STREAM_MIB=${STREAM_MIB:-1024}
PORT_MIB=${PORT_MIB:-1024}

. bench/lib.sh
prepare_engines
rel=$PWD/target/release
DOCKER_CLI=$(command -v docker)

work=$(mktemp -d /tmp/berth-bench-engine.XXXXXX)
engines_start
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1])/float(sys.argv[2])))" "$1" "$2"; }

echo "== 1. run --rm --network none busybox true ($RUNS runs each)"
$B run --rm --network none busybox true; $D run --rm --network none busybox true
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/run.json" \
  -n berth "$B run --rm --network none busybox true" \
  -n docker "$D run --rm --network none busybox true" >/dev/null
read -r run_b run_d < <(median_ms "$work/run.json")

echo "== 3. idle RSS"
sleep 2
rss_b=$(( $(rss_kib "$berthd_pid") + $(rss_kib "$lc_pid") ))
rss_d=$(( $(rss_kib "$dockerd_pid") + $(rss_kib "$ctd_pid") ))

echo "== 6. $STREAM_MIB MiB through run -i busybox cat"
stream() { head -c "${STREAM_MIB}M" /dev/zero | $1 run -i --rm --network none busybox cat | wc -c; }
export -f stream; export STREAM_MIB
hyperfine -N --runs 3 --export-json "$work/stream.json" \
  -n berth "bash -c 'stream \"$B\"'" -n docker "bash -c 'stream \"$D\"'" >/dev/null
read -r stream_b stream_d < <(median_ms "$work/stream.json")

echo "== 7. $STREAM_MIB MiB through exec -i busybox cat"
$B run -d --name pipe --network none busybox sleep 3600 >/dev/null
$D run -d --name pipe --network none busybox sleep 3600 >/dev/null
xstream() { head -c "${STREAM_MIB}M" /dev/zero | $1 exec -i pipe cat | wc -c; }
export -f xstream
hyperfine -N --runs 3 --export-json "$work/xstream.json" \
  -n berth "bash -c 'xstream \"$B\"'" -n docker "bash -c 'xstream \"$D\"'" >/dev/null
read -r xstream_b xstream_d < <(median_ms "$work/xstream.json")
$B rm -f pipe >/dev/null; $D rm -f pipe >/dev/null
echo "== 8. run --rm busybox true: default bridge vs --network none ($RUNS runs each)"
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/net.json" \
  -n berth-bridge "$B run --rm busybox true" -n berth-none "$B run --rm --network none busybox true" \
  -n docker-bridge "$D run --rm busybox true" -n docker-none "$D run --rm --network none busybox true" >/dev/null
read -r net_bb net_bn net_db net_dn < <(median_ms "$work/net.json")

echo "== 9. $PORT_MIB MiB through a published port at 127.0.0.1"
fetch() { python3 -c '
import socket, sys, time
want = int(sys.argv[2]) << 20
deadline = time.time() + 10
while True:
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); break
    except OSError:
        if time.time() > deadline: raise
        time.sleep(0.05)
n = 0
while n < want:
    b = s.recv(1 << 20)
    if not b: break
    n += len(b)
assert n == want, n
' "$1" "$PORT_MIB"; }
serve() { $1 run -d --rm -p "$2:5001" busybox sh -c "head -c ${PORT_MIB}m /dev/zero | nc -l -p 5001" >/dev/null; }
port_ms() { # engine CLI, host port
  local t0 t1 best=""
  for i in 1 2 3; do
    serve "$1" "$2"
    t0=$(date +%s%N); fetch "$2"; t1=$(date +%s%N)
    local ms=$(( (t1 - t0) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
    sleep 0.5
  done
  echo "$best"
}
port_b=$(port_ms "$B" 18081); port_d=$(port_ms "$D" 18082)
mibps_of() { python3 -c "import sys; print('%.0f' % (float(sys.argv[1]) / (float(sys.argv[2]) / 1000)))" "$1" "$2"; }
added() { python3 -c "import sys; print('%.1f' % (float(sys.argv[1]) - float(sys.argv[2])))" "$1" "$2"; }

mibps() { python3 -c "import sys; print('%.0f' % (float(sys.argv[1]) / (float(sys.argv[2]) / 1000)))" "$STREAM_MIB" "$1"; }

echo "== 2. ps -a with $CONTAINERS containers"
seq "$CONTAINERS" | xargs -P 4 -I{} $B create --network none busybox true >/dev/null
seq "$CONTAINERS" | xargs -P 4 -I{} $D create --network none busybox true >/dev/null
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/ps.json" \
  -n berth "$B ps -a" -n docker "$D ps -a" >/dev/null
read -r ps_b ps_d < <(median_ms "$work/ps.json")
$B ps -aq | xargs -r -n 100 $B rm >/dev/null
$D ps -aq | xargs -r -n 100 $D rm >/dev/null

echo "== 4. engine start to ps with $LIVE live containers"
seq "$LIVE" | xargs -P 4 -I{} $B run -d --network none busybox sleep 3600 >/dev/null
seq "$LIVE" | xargs -P 4 -I{} $D run -d --network none busybox sleep 3600 >/dev/null
ready_ms() { # engine start command, client; sets $ms (no subshell: the
  local t0 t1 # engine must stay our child for cleanup)
  t0=$(date +%s%N)
  "$1"
  until $2 ps -q >/dev/null 2>&1; do sleep 0.005; done
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
}
echo "== 5. stats --no-stream over $LIVE containers"
hyperfine -N --warmup 1 --runs 5 --export-json "$work/stats.json" \
  -n berth "$B stats --no-stream" -n docker "$D stats --no-stream" >/dev/null
read -r stats_b stats_d < <(median_ms "$work/stats.json")

kill -9 "$berthd_pid"; wait "$berthd_pid" 2>/dev/null || true
ready_ms start_berthd "$B"; start_b_ms=$ms
kill -9 "$dockerd_pid"; wait "$dockerd_pid" 2>/dev/null || true
ready_ms start_dockerd "$D"; start_d_ms=$ms
live_b=$($B ps -q | wc -l); live_d=$($D ps -q | wc -l)

cat <<TXT

| measure | berth | Docker ($(dockerd --version | cut -d, -f1)) | berth / Docker | goal |
|---|---|---|---|---|
| run --rm --network none busybox true (median) | ${run_b} ms | ${run_d} ms | $(ratio "$run_b" "$run_d") | ≤ 0.2 |
| ps -a with $CONTAINERS containers (median) | ${ps_b} ms | ${ps_d} ms | $(ratio "$ps_b" "$ps_d") | ≤ 0.1 |
| idle RSS, engine + lifecycle daemon | $((rss_b / 1024)) MiB | $((rss_d / 1024)) MiB | $(ratio "$rss_b" "$rss_d") | ≤ 0.2 |
| engine start to ps, $LIVE live containers ($live_b / $live_d still running) | ${start_b_ms} ms | ${start_d_ms} ms | $(ratio "$start_b_ms" "$start_d_ms") | ≤ 500 ms |
| stats --no-stream, $LIVE containers (median of 5) | ${stats_b} ms | ${stats_d} ms | $(ratio "$stats_b" "$stats_d") | ≤ 0.2 |
| run -i cat, $STREAM_MIB MiB in and out (median of 3) | $(mibps "$stream_b") MiB/s | $(mibps "$stream_d") MiB/s | $(ratio "$stream_d" "$stream_b") (throughput) | ≥ 2 |
| exec -i cat, $STREAM_MIB MiB in and out (median of 3) | $(mibps "$xstream_b") MiB/s | $(mibps "$xstream_d") MiB/s | $(ratio "$xstream_d" "$xstream_b") (throughput) | ≥ 2 |
| run --rm true on the default bridge (median) | ${net_bb} ms | ${net_db} ms | $(ratio "$net_bb" "$net_db") | |
| what the bridge adds to a start (bridge − none) | $(added "$net_bb" "$net_bn") ms | $(added "$net_db" "$net_dn") ms | | ≤ 30 ms |
| $PORT_MIB MiB through a published port, 127.0.0.1 (best of 3) | $(mibps_of "$PORT_MIB" "$port_b") MiB/s | $(mibps_of "$PORT_MIB" "$port_d") MiB/s | $(ratio "$port_d" "$port_b") (throughput) | ≥ 1 |
$(REL=$rel bench/installed-size.sh)
TXT
