#!/usr/bin/env bash
# Image pull and unpack: berth's imagestore beside `skopeo copy` to an OCI
# directory + `umoci unpack` as the reference, from a local docker-registry
# (distribution 2.8) on 127.0.0.1. The image is ~200 MiB (uncompressed) in 5
# layers made of files of the installed Debian packages. Prints the medians
# of RUNS runs (default 3) and the ratio berth/reference (below 1 is faster).
# Run as root. Needs: docker-registry skopeo umoci python3.
set -euo pipefail
cd "$(dirname "$0")/.."

for t in docker-registry skopeo umoci python3 tar; do
  command -v "$t" >/dev/null || { echo "images.sh needs $t (apt-get install docker-registry skopeo umoci)" >&2; exit 1; }
done
RUNS=${RUNS:-3}
LAYER_MIB=${LAYER_MIB:-40}

work=$(mktemp -d /var/tmp/berth-images-bench.XXXXXX)
reg_pid=
cleanup() {
  if [ -n "$reg_pid" ]; then kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "building the bench binary (release)..." >&2
cargo build --release -q -p imagestore --example images_bench
bin=${CARGO_TARGET_DIR:-target}/release/examples/images_bench

# 1. Five layers of about LAYER_MIB MiB each, from files that Debian
#    packages installed (in dpkg's order, so the same machine gives the same image).
dpkg-query -W -f='${Package}\n' | xargs dpkg -L 2>/dev/null > "$work/all-files" || true
python3 - "$work" "$LAYER_MIB" <<'EOF'
import os, sys
work, mib = sys.argv[1], int(sys.argv[2])
seen, layers, cur, size = set(), [], [], 0
for line in open(os.path.join(work, "all-files")):
    p = line.strip()
    if not p.startswith("/") or p in seen or os.path.islink(p) or not os.path.isfile(p):
        continue
    seen.add(p)
    n = os.path.getsize(p)
    if n > 16 << 20:
        continue
    cur.append(p[1:])
    size += n
    if size >= mib << 20:
        layers.append(cur)
        cur, size = [], 0
        if len(layers) == 5:
            break
if len(layers) < 5:
    sys.exit("not enough package files for 5 layers of %d MiB" % mib)
for i, l in enumerate(layers):
    with open(os.path.join(work, "layer%d.list" % i), "w") as f:
        f.write("\n".join(l) + "\n")
EOF
umoci init --layout "$work/oci" >/dev/null
umoci new --image "$work/oci:bench" >/dev/null
for i in 0 1 2 3 4; do
  tar -C / --no-recursion -cf "$work/layer$i.tar" -T "$work/layer$i.list" 2>/dev/null
  umoci raw add-layer --image "$work/oci:bench" "$work/layer$i.tar"
  rm -f "$work/layer$i.tar"
done
umoci config --image "$work/oci:bench" --config.cmd /bin/sh >/dev/null

# 2. A registry of our own on a free port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat > "$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done
ref="127.0.0.1:$port/bench/img:1"
skopeo copy -q --dest-tls-verify=false "oci:$work/oci:bench" "docker://$ref"
raw=$(du -sb --apparent-size "$work/registry/data" | cut -f1)
unc=$(cat "$work"/layer*.list | sed 's|^|/|' | tr '\n' '\0' | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)

now() { date +%s.%N; }
for run in $(seq "$RUNS"); do
  rm -rf "$work/ref" "$work/bundle" "$work/berth"
  t0=$(now)
  skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$work/ref:img"
  t1=$(now)
  umoci unpack --image "$work/ref:img" "$work/bundle" >/dev/null
  t2=$(now)
  echo "ref_pull=$(awk "BEGIN{print $t1 - $t0}")" >> "$work/times"
  echo "ref_unpack=$(awk "BEGIN{print $t2 - $t1}")" >> "$work/times"
  rm -rf "$work/ref" "$work/bundle"
  "$bin" --work "$work/berth" --reference "$ref" >> "$work/times"
  rm -rf "$work/berth"
done

python3 - "$work/times" "$unc" "$raw" "$RUNS" <<'EOF'
import sys, statistics
times, unc, raw, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t = {}
for line in open(times):
    k, v = line.strip().split("=")
    t.setdefault(k, []).append(float(v))
m = {k: statistics.median(v) for k, v in t.items()}
print(f"image: 5 layers, {unc / 2**20:.0f} MiB of files, {raw / 2**20:.0f} MiB in the registry; median of {runs} runs")
print(f"{'':26}{'berth':>9}{'reference':>11}{'ratio':>8}")
rows = [
    ("pull (download+verify)", m["pull"], m["ref_pull"], "skopeo copy"),
    ("unpack", m["unpack"], m["ref_unpack"], "umoci unpack"),
    ("pull, then unpack", m["pull"] + m["unpack"], m["ref_pull"] + m["ref_unpack"], "both"),
    ("pull unpacking as it goes", m["pull_unpack"], m["ref_pull"] + m["ref_unpack"], "both"),
]
for name, b, r, what in rows:
    print(f"{name:26}{b:8.2f}s{r:10.2f}s{b / r:8.2f}   ({what})")
EOF
