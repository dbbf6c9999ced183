#!/usr/bin/env bash
# Fuzzes berthd's Engine API with schemathesis, driven by Docker's own
# specification (fuzz/docker-engine-api-v1.43.yaml, moby's api/swagger.yaml
# of API 1.43, Apache-2.0, unmodified; or $SPEC), for $FUZZ_SECONDS (default
# 120). berthd and berth-lifecycled run with roots of their own under a
# temporary directory and in a network namespace of their own, so that
# nothing the fuzzer asks for (networks, bridges, firewall rules, pulls)
# reaches the host's network. Fails on any 5xx that is not dockerd's own
# documented behaviour (fuzz/hooks.py). Run as root, after
# `cargo build --workspace`; BERTH_BIN picks other binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
FUZZ_SECONDS=${FUZZ_SECONDS:-120}
BIN=${BERTH_BIN:-$root/target/debug}
SPEC=${SPEC:-$root/fuzz/docker-engine-api-v1.43.yaml}
VENV=${FUZZ_VENV:-$root/target/fuzz-venv}
SCHEMATHESIS_VERSION=4.32.5

if [ "$(id -u)" != 0 ]; then
  echo "fuzz/api.sh: berthd makes namespaces, mounts and cgroups; run as root" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

work=$(mktemp -d /tmp/berth-fuzz.XXXXXX)
ns=berth-fuzz-$$
cg=berth-fuzz-$$
pids=()
cleanup() {
  set +e
  [ -S "$work/berthd.sock" ] && "$BIN/berth" -H "unix://$work/berthd.sock" ps -aq 2>/dev/null \
    | xargs -r "$BIN/berth" -H "unix://$work/berthd.sock" rm -f >/dev/null 2>&1
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  # Shims and containers outlive the daemons by design: end them by pid.
  for f in "$work"/lc-state/tasks/*/*/shim.pid; do
    [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
  done
  for f in /sys/fs/cgroup/*/"$cg"/*/cgroup.procs /sys/fs/cgroup/"$cg"/*/cgroup.procs; do
    [ -f "$f" ] && xargs -r kill -9 < "$f" 2>/dev/null
  done
  # The name server berthd started (its pid file, checked against its
  # command line: it must be ours).
  af=$work/engine-run/aardvark-dns/aardvark.pid
  if [ -f "$af" ] && grep -qa "$work" "/proc/$(cat "$af")/cmdline" 2>/dev/null; then
    kill -9 "$(cat "$af")"
  fi
  sleep 0.3
  grep -E " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for c in /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg"; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  ip netns del "$ns" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
cat > "$work/daemon.json" <<JSON
{"cgroup-parent": "$cg", "bridge": "bfz0", "bip": "10.199.0.1/24",
 "default-address-pools": [{"base": "10.198.0.0/16", "size": 24}],
 "api-idle-timeout": "20s"}
JSON
nsenter --net="/run/netns/$ns" "$BIN/berth-lifecycled" --address "$work/lc.sock" --root "$work/lc-root" \
  --state "$work/lc-state" > "$work/lifecycled.log" 2>&1 &
pids+=($!)
nsenter --net="/run/netns/$ns" "$BIN/berthd" --config-file "$work/daemon.json" \
  -H "unix://$work/berthd.sock" -H tcp://127.0.0.1:2375 --tls=false \
  --data-root "$work/engine" --exec-root "$work/engine-run" --lifecycled "$work/lc.sock" \
  > "$work/berthd.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do
  "$BIN/berth" -H "unix://$work/berthd.sock" version >/dev/null 2>&1 && break
  sleep 0.1
done
# An image to create containers from, so that create goes past the image.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp /bin/busybox "$work/rootfs/bin/"
for a in sh sleep true echo cat; do ln -sf busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/busybox.tar" .
B=("$BIN/berth" -H "unix://$work/berthd.sock")
"${B[@]}" import --change 'CMD ["sh"]' "$work/busybox.tar" busybox:latest >/dev/null
# What the calls on one object find (fuzz/schemathesis.toml names them).
"${B[@]}" network create --subnet 10.197.0.0/24 -o com.docker.network.bridge.name=bfz1 fuzznet >/dev/null
"${B[@]}" volume create fuzzvol >/dev/null
"${B[@]}" run -d --name fuzzbox --network fuzznet -v fuzzvol:/data busybox sleep 100000 >/dev/null
"${B[@]}" create --name fuzzstopped busybox true >/dev/null

# Left out: calls that hold the connection by design (hijacks, endless
# streams, waits for an exit), and the session endpoint.
set +e
# schemathesis keeps a cache in its working directory: the run's own.
cd "$work"
SCHEMATHESIS_HOOKS=hooks PYTHONPATH=$root/fuzz nsenter --net="/run/netns/$ns" "$VENV/bin/schemathesis" \
  --config-file "$root/fuzz/schemathesis.toml" run "$SPEC" \
  --url http://127.0.0.1:2375/v1.43 \
  --checks no_undocumented_5xx \
  --max-time "$FUZZ_SECONDS" \
  --workers 2 \
  --request-timeout 15 \
  --suppress-health-check all \
  --exclude-path-regex '/attach|/exec/\{id\}/start|^/events|/stats$|/wait$|^/session' \
  --no-color \
  --report junit --report-dir "$work/report" > "$work/schemathesis.out" 2>&1
set -e
# What went wrong on schemathesis's side too (a request timing out, a
# connection refused), not only the summary: the run's files go with it.
sed -n '/^=* \(ERRORS\|SUMMARY\)/,$p' "$work/schemathesis.out"
# A check that failed is berth's fault; an error of schemathesis's own
# (its generator failing on a part of Docker's schema) is not.
cd "$root"
rc=0
"$VENV/bin/python" - "$work"/report/junit*.xml <<'PY' || rc=1
import sys, xml.etree.ElementTree as ET
failed = 0
for case in ET.parse(sys.argv[1]).iter("testcase"):
    for f in case.findall("failure"):
        failed += 1
        print(f"FAILED {case.get('name')}: {(f.get('message') or '')[:500]}\n{(f.text or '')[:2000]}")
sys.exit(1 if failed else 0)
PY
if grep -q "panicked" "$work/berthd.log"; then
  echo "berthd logged a panic:" >&2
  grep -B2 -A5 "panicked" "$work/berthd.log" | head -40 >&2
  rc=1
fi
if ! kill -0 "${pids[1]}" 2>/dev/null; then
  echo "berthd died during the run:" >&2
  tail -20 "$work/berthd.log" >&2
  rc=1
fi
exit "$rc"
