#!/usr/bin/env bash
# berth-runtime against runc and crun on the same busybox bundle: the full
# cycle `run` of /bin/true (create + start + wait + delete), the three
# runtimes interleaved run by run (so that a slow moment of the machine
# falls on all of them alike), $RUNS runs each after 10 warm-up rounds:
#   - wall time, median;
#   - CPU time (user + system of the runtime and everything it waited for),
#     median: wall beyond it is waiting;
#   - peak RSS (GNU time's %M), median;
# once back to back and once with the machine idle for 100 ms before each
# run (cgroup migrations are cheap only right after another one).
# Prints each figure and berth's ratio to the others.
#
# Debian's crun 1.8.1 refuses this machine's hybrid cgroup layout because the
# cgroup2 mount lists the hugetlb controller; everything here runs inside a
# private mount namespace where an empty file hides unified/cgroup.controllers,
# which changes nothing for the other two runtimes.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-100}

[ -x /usr/bin/time ] || { echo "bench needs GNU time (apt-get install time)"; exit 1; }
for tool in runc crun busybox python3; do
  command -v "$tool" >/dev/null || { echo "bench needs $tool (apt-get install runc crun busybox-static python3)"; exit 1; }
done

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
python3 - "$berth" "$roots" "$runs" "$work/results.json" <<'PY'
import json, os, subprocess, sys, time
berth, roots, runs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
cmds = {
    "berth-runtime": [berth, "--root", f"{roots}/berth", "run", "cycle"],
    "runc": ["runc", "--root", f"{roots}/runc", "run", "cycle"],
    "crun": ["crun", "--root", f"{roots}/crun", "run", "cycle"],
}
rss_file = out + ".rss"
names = list(cmds)
results = {}
# Back to back, and with the machine idle for 100 ms before each run: a
# cgroup migration waits for an RCU grace period unless another ended
# moments before, so a lone `run` (the usual case) pays waits that a
# tight loop hides.
for regime, gap in (("back to back", 0), ("after 100 ms idle", 0.1)):
  res = results[regime] = {n: {"wall": [], "cpu": [], "rss": []} for n in cmds}
  for i in range(10 + runs):
    # A different runtime goes first each round.
    order = names[i % 3:] + names[:i % 3]
    for n in order:
        time.sleep(gap)
        t0 = time.perf_counter()
        # Through GNU time for the peak RSS: a child forked from this
        # Python would report Python's size (ru_maxrss spans the exec).
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmds[n],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            subprocess.run(cmds[n])
            sys.exit(f"{n} failed ({p.returncode})")
        if i >= 10:
            res[n]["wall"].append(wall * 1000)
            res[n]["cpu"].append((ru.ru_utime + ru.ru_stime) * 1000)
            res[n]["rss"].append(int(open(rss_file).read().split()[-1]))
json.dump(results, open(out, "w"))
PY
INNER

python3 - "$work/results.json" <<'PY'
import json, statistics, sys
results = json.load(open(sys.argv[1]))
for regime, res in results.items():
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in res.items()}
    print(f"{regime}: {len(res['runc']['wall'])} runs each, interleaved")
    print(f"  {'runtime':<15}{'wall (median)':>15}{'CPU (median)':>15}{'peak RSS':>12}")
    for n in ("berth-runtime", "runc", "crun"):
        m = med[n]
        print(f"  {n:<15}{m['wall']:>12.2f} ms{m['cpu']:>12.2f} ms{m['rss']/1024:>8.2f} MiB")
    b = med["berth-runtime"]
    for other in ("runc", "crun"):
        o = med[other]
        print(f"  berth-runtime / {other}: wall {b['wall']/o['wall']:.2f}x, CPU {b['cpu']/o['cpu']:.2f}x, "
              f"peak RSS {b['rss']/o['rss']:.2f}x")
PY
