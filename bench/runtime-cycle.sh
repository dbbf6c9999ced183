#!/usr/bin/env bash
# berth-runtime against runc and crun on the same busybox bundle:
#   - the full cycle `run` of /bin/true (create + start + wait + delete), median
#     of hyperfine runs;
#   - each runtime's peak RSS during that cycle (GNU time's %M, median of 20).
# Prints each figure and berth's ratio to the others.
#
# Debian's crun 1.8.1 refuses this machine's hybrid cgroup layout because the
# cgroup2 mount lists the hugetlb controller; everything here runs inside a
# private mount namespace where an empty file hides unified/cgroup.controllers,
# which changes nothing for the other two runtimes.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-200}

for tool in hyperfine runc crun busybox; do
  command -v "$tool" >/dev/null || { echo "bench needs $tool (apt-get install hyperfine runc crun busybox-static time)"; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench needs GNU time (apt-get install time)"; exit 1; }

scripts/build-static >/dev/null 2>&1
berth=$PWD/target/static/berth-runtime

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
roots=$(mktemp -d /run/berth-bench.XXXXXX)
trap 'rm -rf "$work" "$roots"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/proc" "$work/rootfs/sys" "$work/rootfs/dev" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
ln -s busybox "$work/rootfs/bin/true"
"$berth" spec --bundle "$work"
python3 - "$work/config.json" <<'PY'
import json, sys
p = sys.argv[1]
s = json.load(open(p))
s["process"]["terminal"] = False
s["process"]["args"] = ["/bin/true"]
s["linux"]["cgroupsPath"] = "/berth-bench"
json.dump(s, open(p, "w"))
PY
touch "$work/empty"

unshare -m --propagation private bash -s "$berth" "$work" "$roots" "$runs" <<'INNER'
set -euo pipefail
berth=$1 work=$2 roots=$3 runs=$4
mount --bind "$work/empty" /sys/fs/cgroup/unified/cgroup.controllers
cd "$work"
hyperfine -N --warmup 20 --runs "$runs" --export-json "$work/h.json" \
  -n berth-runtime "$berth --root $roots/berth run cycle" \
  -n runc "runc --root $roots/runc run cycle" \
  -n crun "crun --root $roots/crun run cycle" >/dev/null || { hyperfine -N --runs 1 --show-output "$berth --root $roots/berth run cycle" "runc --root $roots/runc run cycle" "crun --root $roots/crun run cycle"; exit 1; }
for rt in "$berth" runc crun; do
  name=$(basename "$rt")
  for _ in $(seq 20); do
    /usr/bin/time -f "%M" -o "$work/rss" "$rt" --root "$roots/$name" run cycle
    cat "$work/rss" >> "$work/rss-$name"
  done
done
INNER

python3 - "$work" <<'PY'
import json, statistics, sys
work = sys.argv[1]
h = {r["command"]: r for r in json.load(open(f"{work}/h.json"))["results"]}
rss = {n: statistics.median(int(x) for x in open(f"{work}/rss-{n}").read().split())
       for n in ("berth-runtime", "runc", "crun")}
med = {n: statistics.median(h[n]["times"]) * 1000 for n in h}
print(f"{'runtime':<15}{'run /bin/true (median)':>24}{'peak RSS':>12}")
for n in ("berth-runtime", "runc", "crun"):
    print(f"{n:<15}{med[n]:>21.2f} ms{rss[n]/1024:>9.2f} MiB")
for other in ("runc", "crun"):
    print(f"berth-runtime / {other}: time {med['berth-runtime']/med[other]:.2f}x, "
          f"peak RSS {rss['berth-runtime']/rss[other]:.2f}x")
PY
