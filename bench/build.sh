#!/usr/bin/env bash
# Image builds: berthd's classic builder beside Debian's dockerd 20.10 with
# its legacy builder (the docker CLI with DOCKER_BUILDKIT=0), in one run,
# on the same Dockerfile and context:
#   1. a cold build (--no-cache) of a 10-step Dockerfile with two RUNs and
#      a COPY of a $CONTEXT_MIB MiB context of $FILES files
#   2. a fully cached rebuild
#   3. a rebuild after one file copied in the last step changed
#   4. berthd's RSS during a cold build, above its idle RSS (the context
#      is streamed to disk, never held in memory)
# and prints berth's figure over Docker's. Not a test: nothing asserts.
# Run as root; installs docker.io (Debian) if dockerd is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
COLD_RUNS=${COLD_RUNS:-3}
RUNS=${RUNS:-10}
CONTEXT_MIB=${CONTEXT_MIB:-200}
FILES=${FILES:-5000}

. bench/lib.sh
prepare_engines
rel=$PWD/target/release
DOCKER_CLI=$(command -v docker)

work=$(mktemp -d /var/tmp/berth-bench-build.XXXXXX)
engines_start

echo "== the context: $FILES files, $CONTEXT_MIB MiB"
ctx=$work/ctx
mkdir -p "$ctx"
python3 - "$ctx" "$FILES" "$CONTEXT_MIB" <<'PY'
import os, random, sys
root, files, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
size = (mib << 20) // files
rnd = random.Random(42)
for i in range(files):
    d = os.path.join(root, "src", "d%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.bin" % i), "wb") as f:
        f.write(rnd.randbytes(size))
PY
cat > "$ctx/Dockerfile" <<'EOF'
FROM busybox
ENV APP=/app
WORKDIR /app
RUN echo first > /first
RUN echo second > /second
LABEL bench=build
EXPOSE 8080
USER 0
CMD ["ls", "/app"]
COPY src /app/src
EOF

B_BUILD="$B build -q -t bench $ctx"
D_BUILD="env DOCKER_BUILDKIT=0 $D build -q -t bench $ctx"
touch_one() { date +%s%N >> "$ctx/src/d000/f00000.bin"; }
export -f touch_one; export ctx

echo "== 1. cold builds ($COLD_RUNS each)"
hyperfine -N --runs "$COLD_RUNS" --export-json "$work/cold.json" \
  -n berth "$B_BUILD --no-cache" -n docker "$D_BUILD --no-cache" >/dev/null
read -r cold_b cold_d < <(median_ms "$work/cold.json")

echo "== 2. cached rebuilds ($RUNS each)"
$B_BUILD >/dev/null; $D_BUILD >/dev/null
hyperfine -N --runs "$RUNS" --export-json "$work/cached.json" \
  -n berth "$B_BUILD" -n docker "$D_BUILD" >/dev/null
read -r cached_b cached_d < <(median_ms "$work/cached.json")

echo "== 3. one file of the last step changed ($RUNS each)"
hyperfine -N --runs "$RUNS" --prepare "bash -c touch_one" --export-json "$work/one.json" \
  -n berth "$B_BUILD" -n docker "$D_BUILD" >/dev/null
read -r one_b one_d < <(median_ms "$work/one.json")

echo "== 4. berthd's memory during a cold build"
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
sleep 2
idle=$(rss_kib "$berthd_pid")
peak=$idle
$B_BUILD --no-cache >/dev/null &
build_pid=$!
while kill -0 "$build_pid" 2>/dev/null; do
  now=$(rss_kib "$berthd_pid")
  [ "$now" -gt "$peak" ] && peak=$now
  sleep 0.05
done
wait "$build_pid"
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1])/float(sys.argv[2])))" "$1" "$2"; }

echo
echo "| measure | berth | Docker ($(dockerd --version | cut -d, -f1), legacy builder) | berth / Docker | goal |"
echo "|---|---|---|---|---|"
echo "| cold build, 10 steps, $CONTEXT_MIB MiB in $FILES files (median of $COLD_RUNS) | $cold_b ms | $cold_d ms | $(ratio "$cold_b" "$cold_d") | ≤ 0.7 |"
echo "| fully cached rebuild (median of $RUNS) | $cached_b ms | $cached_d ms | $(ratio "$cached_b" "$cached_d") | ≤ 0.2 |"
echo "| one file of the last COPY changed (median of $RUNS) | $one_b ms | $one_d ms | $(ratio "$one_b" "$one_d") | ≤ 0.3 |"
echo "| berthd RSS during a cold build, above idle ($((idle / 1024)) MiB) | $(((peak - idle) / 1024)) MiB | | | ≤ 20 MiB |"
