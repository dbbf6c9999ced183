# Sourced by the benchmarks that run berth beside Debian's Docker engine.

# What both stacks need: berth's packages, docker.io, a release build
# (the CLI) and the static daemons, shim and runtime (what scripts/install
# installs).
prepare_engines() {
  scripts/deps
  if ! command -v dockerd >/dev/null || ! command -v containerd >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io
  fi
  cargo build --release --workspace -q
  scripts/build-static >/dev/null
}

wait_for() { for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "timed out: $*" >&2; return 1; }

# $1/busybox.tar: the same busybox root filesystem for both engines.
busybox_tar() {
  local root=$1/rootfs
  mkdir -p "$root/bin" "$root/etc"
  for d in proc sys dev tmp root; do mkdir -p "$root/$d"; done
  cp /bin/busybox "$root/bin/"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\n' > "$root/etc/group"
  tar -C "$root" -cf "$1/busybox.tar" .
}

# The medians (ms) of a hyperfine JSON export, in command order.
median_ms() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(' '.join('%.1f' % (x['median']*1000) for x in r))" "$1"; }

# Both engines under $work, each with its own roots, sockets, bridge and
# cgroup parent: berthd + lifecycled ($B) and dockerd + containerd ($D),
# both with busybox:latest; everything is stopped and removed on exit.
# Each engine's run-time state (berth's lifecycled state and exec root,
# containerd's state and dockerd's exec root) is on a tmpfs at $run, as
# /run is on the hosts both are made for: a bench directory on this
# machine's disk would charge each start the file system's inode
# allocations, which /run never costs.
# Needs $work, $rel and $DOCKER_CLI; defines start_lifecycled,
# start_berthd and start_dockerd for restarts.
engines_start() {
  pids=()
  cleanup() {
    set +e
    [ -n "${B:-}" ] && $B ps -aq 2>/dev/null | xargs -r -n 50 $B rm -f >/dev/null 2>&1
    [ -n "${D:-}" ] && $D ps -aq 2>/dev/null | xargs -r -n 50 $D rm -f >/dev/null 2>&1
    # Managed plugins run beside the containers (dockerd's outside any
    # cgroup of the bench's): each engine ends its own.
    [ -n "${B:-}" ] && $B plugin ls -q 2>/dev/null | xargs -r $B plugin rm -f >/dev/null 2>&1
    [ -n "${D:-}" ] && $D plugin ls -q 2>/dev/null | xargs -r $D plugin rm -f >/dev/null 2>&1
    # Their networks too: a user network's bridge outlives its engine (as
    # Docker's do), and a bridge left with a subnet routes the next run's
    # packets for that subnet nowhere.
    [ -n "${B:-}" ] && $B network prune -f >/dev/null 2>&1
    [ -n "${D:-}" ] && $D network prune -f >/dev/null 2>&1
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    sleep 1
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    # Shims and containers outlive their daemons by design: end the shims
    # under our roots, then every process left in the bench's cgroups.
    # (Managed plugins too: lifecycled's plugins.berth, containerd's
    # plugins.moby, their cgroups a level deeper than containers'.)
    for f in "$run"/b/lc-state/tasks/*/*/shim.pid "$run"/d/containerd-state/io.containerd.runtime.v2.task/*/*/shim.pid; do
      [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
    find /sys/fs/cgroup -path '*berth-bench*' -name cgroup.procs 2>/dev/null | while read -r f; do
      xargs -r kill -9 < "$f" 2>/dev/null
    done
    sleep 0.5
    grep -E " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    for c in /sys/fs/cgroup/*/berth-bench* /sys/fs/cgroup/berth-bench*; do
      [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    ip link delete bbench0 2>/dev/null
    ip link delete dbench0 2>/dev/null
    [ -f "$work/iptables.before" ] && iptables-restore < "$work/iptables.before"
    rm -rf "$work"
  }
  trap cleanup EXIT
  run=$work/run
  mkdir -p "$run"
  mount -t tmpfs -o mode=0711 berth-bench-run "$run"
  mkdir -p "$run/b" "$run/d"

  # The same busybox root filesystem for both engines.
  busybox_tar "$work"

  # Both engines get a bridge of their own; the firewall is put back as it
  # was when the bench ends.
  iptables-save > "$work/iptables.before"

  # --- berth
  mkdir -p "$work/b"
  printf 'cgroup_parent = "berth-bench-berth"\nshim = "%s"\n[runtimes.berth-runtime]\npath = "%s"\n' \
    "$PWD/target/static/berth-shim" "$PWD/target/static/berth-runtime" > "$work/b/lc.toml"
  printf '{"cgroup-parent": "berth-bench-berth", "bridge": "bbench0", "bip": "10.196.0.1/24"}\n' > "$work/b/daemon.json"
  start_lifecycled() {
    "$PWD/target/static/berth-lifecycled" --config "$work/b/lc.toml" --address "$work/b/lc.sock" \
      --root "$work/b/lc-root" --state "$run/b/lc-state" --log-level warn >/dev/null 2>>"$work/b/lc.log" &
    lc_pid=$!; pids+=("$lc_pid")
  }
  start_berthd() {
    "$PWD/target/static/berthd" --config-file "$work/b/daemon.json" -H "unix://$work/b/berthd.sock" \
      --data-root "$work/b/engine" --exec-root "$run/b/engine-run" \
      --lifecycled "$work/b/lc.sock" --log-level warn >/dev/null 2>>"$work/b/berthd.log" &
    berthd_pid=$!; pids+=("$berthd_pid")
  }
  start_lifecycled
  wait_for test -S "$work/b/lc.sock"
  start_berthd
  B="$rel/berth -H unix://$work/b/berthd.sock"
  wait_for $B version
  $B import --change 'CMD ["sh"]' "$work/busybox.tar" busybox:latest >/dev/null

  # --- Docker
  mkdir -p "$work/d"
  printf 'version = 2\n[grpc]\n  address = "%s"\n[ttrpc]\n  address = "%s"\n' \
    "$work/d/containerd.sock" "$work/d/containerd.sock.ttrpc" > "$work/d/containerd.toml"
  containerd -c "$work/d/containerd.toml" --root "$work/d/containerd-root" \
    --state "$run/d/containerd-state" >/dev/null 2>>"$work/d/containerd.log" &
  ctd_pid=$!; pids+=("$ctd_pid")
  wait_for test -S "$work/d/containerd.sock"
  ip link add dbench0 type bridge
  ip addr add 10.197.0.1/24 dev dbench0
  ip link set dbench0 up
  start_dockerd() {
    dockerd --containerd="$work/d/containerd.sock" -H "unix://$work/d/docker.sock" \
      --data-root "$work/d/docker" --exec-root "$run/d/exec" --pidfile "$work/d/docker.pid" \
      --bridge=dbench0 \
      --cgroup-parent=berth-bench-docker --live-restore >/dev/null 2>>"$work/d/dockerd.log" &
    dockerd_pid=$!; pids+=("$dockerd_pid")
  }
  start_dockerd
  D="$DOCKER_CLI -H unix://$work/d/docker.sock"
  wait_for $D version
  $D import --change 'CMD ["sh"]' "$work/busybox.tar" busybox:latest >/dev/null
}
