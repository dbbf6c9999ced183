# Sourced by the benchmarks that run berth beside Debian's Docker engine.

# What both stacks need: berth's packages, docker.io, a release build.
prepare_engines() {
  scripts/deps
  if ! command -v dockerd >/dev/null || ! command -v containerd >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io
  fi
  cargo build --release --workspace -q
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
