#!/usr/bin/env bash
# berth-lifecycled and berth-shim: task cycle latency beside the bare runtime,
# idle shim memory, lifecycled memory with 100 containers. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-static >/dev/null 2>&1
cargo build --release --workspace >/dev/null 2>&1
export BERTH_SHIM=$PWD/target/static/berth-shim
export BERTH_RUNTIME=$PWD/target/static/berth-runtime
cargo bench -p integration-tests --bench lifecycle 2>/dev/null
