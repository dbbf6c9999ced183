#!/usr/bin/env bash
# cargo fuzz (libFuzzer) on every parser of outside input: the API's create
# body and query strings, image references, `docker load` archives and
# rootfs tarballs (unpacked: paths with .., escaping symlinks and hard
# links, device nodes, huge headers), manifests and configs, the Dockerfile
# parser, daemon.json, --format templates and the runtime's config.json.
# Each target runs for $SECS seconds (default 60) from its corpus under
# fuzz/corpus/<target> (kept between runs, not committed). A crash stops
# the run with its input under fuzz/artifacts/<target>/: turn it into a
# regression test beside the code it broke. Not part of the test suite.
#   SECS=300 TARGETS="dockerfile image_archive" fuzz/run.sh
# The API itself, through berthd's socket: fuzz/api.sh (schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo fuzz passes nightly flags. With nightly here, AddressSanitizer is
# on (it watches the C in zstd and liblzma); a machine with only the stable
# toolchain takes the same flags with RUSTC_BOOTSTRAP, without a sanitizer.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  run=(cargo +nightly fuzz run)
else
  export RUSTC_BOOTSTRAP=1
  run=(cargo fuzz run -s none)
fi
targets=${TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^berth-fuzz$')}
for t in $targets; do
  mkdir -p "fuzz/corpus/$t"
  echo "== $t ($SECS s)"
  # Leaks are not looked for: gtmpl's lexer is a thread of its own, still
  # winding down when a run ends, and a process that exits frees all.
  "${run[@]}" "$t" "fuzz/corpus/$t" -- -max_total_time="$SECS" -rss_limit_mb=4096 -timeout=20 -detect_leaks=0
done
echo "fuzz: no crash in $(echo $targets | wc -w) targets"
