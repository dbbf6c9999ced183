#!/usr/bin/env bash
# berthd and Debian's dockerd 20.10 side by side, each reached three ways in
# one run: its unix socket, tcp:// with mutual TLS on 127.0.0.1, and ssh://
# through an sshd of the bench's own (keys, config and port in a temp dir).
# Measures `ps` and `run --rm --network none busybox true` (hyperfine
# medians) and prints what TLS and ssh add per command over the socket.
# Not a test: nothing asserts. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}

. bench/lib.sh
prepare_engines
rel=$PWD/target/release
DOCKER_CLI=$(command -v docker)

work=$(mktemp -d /tmp/berth-bench-remote.XXXXXX)
pids=()
cleanup() {
  set +e
  [ -n "${B:-}" ] && $B ps -aq 2>/dev/null | xargs -r $B rm -f >/dev/null 2>&1
  [ -n "${D:-}" ] && $D ps -aq 2>/dev/null | xargs -r $D rm -f >/dev/null 2>&1
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for f in "$work"/b/lc-state/tasks/*/*/shim.pid "$work"/d/containerd-state/io.containerd.runtime.v2.task/moby/*/shim.pid; do
    [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
  done
  sleep 0.5
  grep -E " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for c in /sys/fs/cgroup/*/berth-bench-remote* /sys/fs/cgroup/berth-bench-remote*; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Certificates: a CA, the daemons' (127.0.0.1) and the client's.
pki=$work/pki; mkdir -p "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca -keyout ca-key.pem -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=daemon -keyout server-key.pem -out server.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile server.ext -out server-cert.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=client -keyout key.pem -out client.csr 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > client.ext
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile client.ext -out cert.pem 2>/dev/null
)
TLS="--tlsverify --tlscacert $pki/ca.pem --tlscert $pki/cert.pem --tlskey $pki/key.pem"

# The same busybox root filesystem for both engines.
busybox_tar "$work"

# --- berth
mkdir -p "$work/b"
printf 'cgroup_parent = "berth-bench-remote-b"\n' > "$work/b/lc.toml"
printf '{"cgroup-parent": "berth-bench-remote-b", "bridge": "bremote0", "bip": "10.195.0.1/24"}\n' > "$work/b/daemon.json"
"$rel/berth-lifecycled" --config "$work/b/lc.toml" --address "$work/b/lc.sock" \
  --root "$work/b/lc-root" --state "$work/b/lc-state" --log-level warn >/dev/null 2>>"$work/b/lc.log" &
pids+=($!)
wait_for test -S "$work/b/lc.sock"
bport=$(free_port)
"$rel/berthd" --config-file "$work/b/daemon.json" -H "unix://$work/b/berthd.sock" -H "tcp://127.0.0.1:$bport" \
  --tlsverify --tlscacert "$pki/ca.pem" --tlscert "$pki/server-cert.pem" --tlskey "$pki/server-key.pem" \
  --data-root "$work/b/engine" --exec-root "$work/b/engine-run" \
  --lifecycled "$work/b/lc.sock" --log-level warn >/dev/null 2>>"$work/b/berthd.log" &
pids+=($!)
B="$rel/berth -H unix://$work/b/berthd.sock"
export BERTH_CONFIG=$work/b/cli
wait_for $B version
$B import --change 'CMD ["sh"]' "$work/busybox.tar" busybox:latest >/dev/null

# --- Docker
mkdir -p "$work/d"
printf 'version = 2\n[grpc]\n  address = "%s"\n[ttrpc]\n  address = "%s"\n' \
  "$work/d/containerd.sock" "$work/d/containerd.sock.ttrpc" > "$work/d/containerd.toml"
containerd -c "$work/d/containerd.toml" --root "$work/d/containerd-root" \
  --state "$work/d/containerd-state" >/dev/null 2>>"$work/d/containerd.log" &
pids+=($!)
wait_for test -S "$work/d/containerd.sock"
dport=$(free_port)
dockerd --containerd="$work/d/containerd.sock" -H "unix://$work/d/docker.sock" -H "tcp://127.0.0.1:$dport" \
  --tlsverify --tlscacert "$pki/ca.pem" --tlscert "$pki/server-cert.pem" --tlskey "$pki/server-key.pem" \
  --data-root "$work/d/docker" --exec-root "$work/d/exec" --pidfile "$work/d/docker.pid" \
  --bridge=none --iptables=false --ip-masq=false --userland-proxy=false \
  --cgroup-parent=berth-bench-remote-d >/dev/null 2>>"$work/d/dockerd.log" &
pids+=($!)
export DOCKER_CONFIG=$work/d/cli
D="$DOCKER_CLI -H unix://$work/d/docker.sock"
wait_for $D version
$D import --change 'CMD ["sh"]' "$work/busybox.tar" busybox:latest >/dev/null

# --- sshd, with each CLI on the far side pointed at its engine's socket
mkdir -p "$work/ssh/bin" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/id"
printf 'environment="PATH=%s:/usr/local/bin:/usr/bin:/bin",environment="BERTH_HOST=unix://%s",environment="DOCKER_HOST=unix://%s",environment="BERTH_CONFIG=%s" %s\n' \
  "$rel" "$work/b/berthd.sock" "$work/d/docker.sock" "$work/b/cli" "$(cat "$work/ssh/id.pub")" > "$work/ssh/authorized_keys"
sport=$(free_port)
cat > "$work/ssh/sshd_config" <<CFG
Port $sport
ListenAddress 127.0.0.1
HostKey $work/ssh/host_key
AuthorizedKeysFile $work/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PermitUserEnvironment yes
PidFile $work/ssh/sshd.pid
LogLevel ERROR
CFG
/usr/sbin/sshd -D -e -f "$work/ssh/sshd_config" 2>>"$work/ssh/sshd.log" &
pids+=($!)
printf '#!/bin/sh\nexec /usr/bin/ssh -i %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes "$@"\n' "$work/ssh/id" > "$work/ssh/bin/ssh"
chmod 755 "$work/ssh/bin/ssh"
export PATH="$work/ssh/bin:$PATH"
wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$sport"

BT="$rel/berth -H tcp://127.0.0.1:$bport $TLS"
BS="$rel/berth -H ssh://root@127.0.0.1:$sport"
DT="$DOCKER_CLI -H tcp://127.0.0.1:$dport $TLS"
DS="$DOCKER_CLI -H ssh://root@127.0.0.1:$sport"
for c in "$BT" "$BS" "$DT" "$DS"; do $c ps >/dev/null; done

diff_ms() { python3 -c "import sys; print('%+.1f' % (float(sys.argv[1]) - float(sys.argv[2])))" "$1" "$2"; }

echo "== ps ($RUNS runs each)"
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/ps.json" \
  -n berth-unix "$B ps" -n berth-tls "$BT ps" -n berth-ssh "$BS ps" \
  -n docker-unix "$D ps" -n docker-tls "$DT ps" -n docker-ssh "$DS ps" >/dev/null
read -r ps_bu ps_bt ps_bs ps_du ps_dt ps_ds < <(median_ms "$work/ps.json")

echo "== run --rm --network none busybox true ($RUNS runs each)"
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/run.json" \
  -n berth-unix "$B run --rm --network none busybox true" -n berth-tls "$BT run --rm --network none busybox true" \
  -n berth-ssh "$BS run --rm --network none busybox true" \
  -n docker-unix "$D run --rm --network none busybox true" -n docker-tls "$DT run --rm --network none busybox true" \
  -n docker-ssh "$DS run --rm --network none busybox true" >/dev/null
read -r run_bu run_bt run_bs run_du run_dt run_ds < <(median_ms "$work/run.json")

cat <<TXT

| command (median of $RUNS) | berth unix | berth TLS | berth ssh | Docker unix | Docker TLS | Docker ssh |
|---|---|---|---|---|---|---|
| ps | ${ps_bu} ms | ${ps_bt} ms | ${ps_bs} ms | ${ps_du} ms | ${ps_dt} ms | ${ps_ds} ms |
| run --rm --network none busybox true | ${run_bu} ms | ${run_bt} ms | ${run_bs} ms | ${run_du} ms | ${run_dt} ms | ${run_ds} ms |

| what the transport adds over the unix socket | berth | Docker | goal |
|---|---|---|---|
| TLS, ps | $(diff_ms "$ps_bt" "$ps_bu") ms | $(diff_ms "$ps_dt" "$ps_du") ms | ≤ 2 ms |
| TLS, run --rm | $(diff_ms "$run_bt" "$run_bu") ms | $(diff_ms "$run_dt" "$run_du") ms | ≤ 2 ms |
| ssh, ps | $(diff_ms "$ps_bs" "$ps_bu") ms | $(diff_ms "$ps_ds" "$ps_du") ms | |
| ssh, run --rm | $(diff_ms "$run_bs" "$run_bu") ms | $(diff_ms "$run_ds" "$run_du") ms | |
TXT
