#!/usr/bin/env bash
# Compose projects: Debian's docker-compose 1.29 bringing a 10-service
# project up and down against berthd and against Debian's dockerd 20.10
# beside it, in one run:
#   1. `up -d` until every service is healthy (5 busybox httpd servers on
#      two networks, 5 clients on both that wait for the servers to be
#      healthy; every service has a healthcheck)
#   2. `down -v` (containers, the two networks and a named volume)
# and prints berth's time over Docker's. Not a test: nothing asserts.
# Run as root; installs docker.io (Debian) if dockerd is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}

. bench/lib.sh
prepare_engines
command -v docker-compose >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose
rel=$PWD/target/release
DOCKER_CLI=$(command -v docker)

work=$(mktemp -d /var/tmp/berth-bench-compose.XXXXXX)
engines_start
# Whatever a run left is taken down with the engines.
compose_cleanup() {
  # Never stops short of the engines' own cleanup (set -e is off here).
  set +e
  [ -s "$work/failures.log" ] && cat "$work/failures.log" >&2
  if [ -x "$work/compose" ]; then
    timeout 120 "$work/compose" b clean >/dev/null 2>&1
  fi
  cleanup
}
trap compose_cleanup EXIT

mkdir -p "$work/project"
python3 - "$work/project/docker-compose.yml" <<'PY'
import sys
servers, clients = 5, 5
health = """    healthcheck:
      test: {test}
      interval: 200ms
      timeout: 2s
      retries: 100
"""
out = ['version: "2.4"', "services:"]
for i in range(1, servers + 1):
    net = "front" if i % 2 else "back"
    out += [f"  web{i}:", "    image: busybox",
            # Well-behaved services: they end on SIGTERM (a shell as PID 1
            # ignores it otherwise, and down would time both engines'
            # 10-second stop grace instead of their work).
            "    command: sh -c 'trap \"exit 0\" TERM; mkdir -p /www && echo web > /www/index.html && httpd -f -p 80 -h /www & wait'",
            f"    networks: [{net}]", "    volumes: [shared:/shared]",
            health.format(test='["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]').rstrip()]
for i in range(1, clients + 1):
    target = f"web{i}"
    out += [f"  client{i}:", "    image: busybox",
            f"    command: sh -c 'trap \"exit 0\" TERM; while true; do wget -q -O /tmp/last http://{target}/; sleep 1 & wait $$!; done'",
            "    networks: [front, back]",
            "    depends_on:", f"      {target}:", "        condition: service_healthy",
            health.format(test='["CMD", "test", "-s", "/tmp/last"]').rstrip()]
out += ["networks:", "  front:", "    ipam:", "      config:", "        - subnet: ${FRONT}",
        "  back:", "    ipam:", "      config:", "        - subnet: ${BACK}",
        "volumes:", "  shared:"]
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY

# One engine's compose (b: berthd, d: dockerd), each with subnets of its
# own so that both bridges route. `up` waits until all 10 services are
# healthy; `clean` takes both projects down and `alone` leaves only this
# engine's up: the other's health checks never load a measurement.
cat > "$work/compose" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
engine=$1 verb=$2
work=$(dirname "$0")
cd "$work/project"
# hyperfine hides a failed command's output: keep it for the end.
failed() {
  { echo "== $1 failed:"; cat "$work/last.log"; } >> "$work/failures.log"
  return 1
}
on() {
  case $1 in
    b) export DOCKER_HOST="unix://$work/b/berthd.sock" FRONT=10.198.1.0/24 BACK=10.198.2.0/24 ;;
    d) export DOCKER_HOST="unix://$work/d/docker.sock" FRONT=10.199.1.0/24 BACK=10.199.2.0/24 ;;
  esac
}
up() {
  on "$1"
  docker-compose -p bench up -d --quiet-pull >"$work/last.log" 2>&1 || { failed "up $1"; return 1; }
  for _ in $(seq 1200); do
    n=$(docker ps --filter label=com.docker.compose.project=bench --filter health=healthy -q | wc -l)
    [ "$n" -ge 10 ] && return 0
    sleep 0.05
  done
  echo "not healthy in time" > "$work/last.log"
  failed "up $1"
}
down() { on "$1"; docker-compose -p bench down -v >"$work/last.log" 2>&1 || { failed "down $1"; return 1; }; }
other=$([ "$engine" = b ] && echo d || echo b)
case $verb in
  up) up "$engine" ;;
  down) down "$engine" ;;
  clean) down b || true; down d || true ;;
  alone) down "$other" || true; up "$engine" ;;
esac
EOF
chmod +x "$work/compose"

echo "== 1. up -d until healthy ($RUNS each)"
hyperfine -N --runs "$RUNS" --export-json "$work/up.json" \
  -n berth --prepare "$work/compose b clean" "$work/compose b up" \
  -n docker --prepare "$work/compose d clean" "$work/compose d up" >/dev/null
read -r up_b up_d < <(median_ms "$work/up.json")

echo "== 2. down -v ($RUNS each)"
hyperfine -N --runs "$RUNS" --export-json "$work/down.json" \
  -n berth --prepare "$work/compose b alone" "$work/compose b down" \
  -n docker --prepare "$work/compose d alone" "$work/compose d down" >/dev/null
read -r down_b down_d < <(median_ms "$work/down.json")
"$work/compose" b clean

ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1])/float(sys.argv[2])))" "$1" "$2"; }
echo
echo "| measure | berth | Docker ($(dockerd --version | cut -d, -f1)) | berth / Docker | goal |"
echo "|---|---|---|---|---|"
echo "| docker-compose up -d, 10 services until all healthy (median of $RUNS) | $up_b ms | $up_d ms | $(ratio "$up_b" "$up_d") | ≤ 0.3 |"
echo "| docker-compose down -v (median of $RUNS) | $down_b ms | $down_d ms | $(ratio "$down_b" "$down_d") | ≤ 0.3 |"
