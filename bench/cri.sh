#!/usr/bin/env bash
# berth-lifecycled's CRI beside containerd 1.6's CRI plugin (Debian's
# containerd, runc, its Go shim), driven by the same CRI client in one run:
# pod start and teardown, the daemon's RSS with 20 pods, the memory each pod
# costs (sandbox process + shims). See integration-tests/benches/cri.rs.
# Not a test: nothing asserts. Run as root.
#   RUNS=20 PODS=20 bench/cri.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v containerd >/dev/null || {
  apt-get install -y -q --no-install-recommends containerd runc >/dev/null
}
scripts/build-static >/dev/null 2>&1
cargo build --release --workspace >/dev/null 2>&1
export BERTH_LIFECYCLED=$PWD/target/static/berth-lifecycled
export BERTH_SHIM=$PWD/target/static/berth-shim
export BERTH_RUNTIME=$PWD/target/static/berth-runtime
cargo bench -p integration-tests --bench cri 2>/dev/null
