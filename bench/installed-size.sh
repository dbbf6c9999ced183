#!/usr/bin/env bash
# Installed size of berth's binaries (the CLIs release, LTO and stripped,
# as the workspace profile builds them; the daemons, shim and runtime from
# scripts/build-static: what scripts/install puts on the PATH)
# against Docker's from Debian: dockerd + containerd +
# containerd-shim-runc-v2 + runc + the docker CLI. Prints one table row
# (bench/engine.sh adds it to its table); goal ≤ 0.3.
# Uses target/release and target/static as they are (run
# `cargo build --release --bins` and scripts/build-static first).
set -euo pipefail
cd "$(dirname "$0")/.."
rel=${REL:-$PWD/target/release}
static=${STATIC:-$PWD/target/static}
size() { stat -L -c %s "$@" | awk '{s += $1} END {print s}'; }
berth=$(size "$rel"/{berth,berth-ctr} "$static"/{berthd,berth-lifecycled,berth-shim,berth-runtime,berth-dns})
docker_bins=()
for b in dockerd containerd containerd-shim-runc-v2 runc docker; do
  p=$(PATH=$PATH:/usr/sbin:/sbin command -v "$b") || { echo "installed-size: $b not found (apt-get install docker.io docker-cli)" >&2; exit 1; }
  docker_bins+=("$p")
done
docker=$(size "${docker_bins[@]}")
awk -v b="$berth" -v d="$docker" 'BEGIN {
  printf "| installed size of the binaries (stripped) | %.1f MiB | %.1f MiB | %.2f | ≤ 0.3 |\n", b / 1048576, d / 1048576, b / d
}'
