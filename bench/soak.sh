#!/usr/bin/env bash
# Soak: the chaos test (integration-tests/tests/chaos.rs) for a long time
# with many containers: counting containers with restart policies, clients
# running a mix of operations in parallel, and a seeded schedule of
# SIGKILLs of berthd, berth-lifecycled and shims. At the end it prints the
# figures: client calls made, how many failed while daemons were down,
# daemon kills, log lines checked, and the problems found (leaks, lost
# lines, unremovable containers, hangs), which must be 0.
# Not a test (CI runs the bounded 45 s version). Run as root.
#   SECS=1800 CONTAINERS=50 SEED=<n> bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-1800}
CONTAINERS=${CONTAINERS:-50}
scripts/deps
cargo build --workspace -q
export BERTH_CHAOS_SECS=$SECS BERTH_CHAOS_CONTAINERS=$CONTAINERS
[ -n "${SEED:-}" ] && export BERTH_CHAOS_SEED=$SEED
# The test's stack is its own (temporary roots, sockets, bridge, cgroups)
# and removes itself, also when a problem is found.
exec cargo test -q -p integration-tests --test chaos nothing_is_lost_or_stuck -- --nocapture --test-threads 1
