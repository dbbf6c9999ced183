"""An IPAM plugin for berth's tests, run on the host as a legacy plugin
(SOCKET: its socket's path). libnetwork's remote IPAM protocol: a pool
asked without a subnet is the next of POOLS (comma-separated); addresses
are given from the top of the pool down (the default IPAM gives the lowest
first, so a test tells who picked), a gateway asked without an address is
the pool's first. /Test.Calls tells what it was asked, /Test.Held what
is allocated."""

import http.server
import ipaddress
import json
import os
import socketserver
import threading

SOCK = os.environ["SOCKET"]
POOLS = [p for p in os.environ.get("POOLS", "").split(",") if p]
CALLS = []
HELD = {}  # pool id -> set of addresses
LOCK = threading.Lock()


def request_pool(req):
    pool = req.get("Pool") or ""
    if not pool:
        free = [p for p in POOLS if "tipam-" + p not in HELD]
        if not free:
            return {"Err": "tipam has no free pool"}
        pool = free[0]
    pid = "tipam-" + pool
    if pid in HELD:
        return {"Err": "pool %s is in use" % pool}
    HELD[pid] = set()
    return {"PoolID": pid, "Pool": pool, "Data": {}}


def request_address(req):
    pid = req.get("PoolID", "")
    if pid not in HELD:
        return {"Err": "no pool %s" % pid}
    net = ipaddress.ip_network(pid[len("tipam-"):])
    held = HELD[pid]
    opts = req.get("Options") or {}
    want = req.get("Address") or ""
    if not want and opts.get("RequestAddressType") == "com.docker.network.gateway":
        want = str(next(net.hosts()))
    if want:
        if want in held:
            return {"Err": "address %s is in use" % want}
        pick = want
    else:
        hosts = [str(h) for h in net.hosts()]
        pick = next((h for h in reversed(hosts) if h not in held), None)
        if pick is None:
            return {"Err": "pool %s is full" % net}
    held.add(pick)
    return {"Address": "%s/%d" % (pick, net.prefixlen), "Data": {}}


def release_address(req):
    HELD.get(req.get("PoolID", ""), set()).discard(req.get("Address", ""))
    return {}


def release_pool(req):
    HELD.pop(req.get("PoolID", ""), None)
    return {}


OPS = {
    "IpamDriver.GetCapabilities": lambda r: {"RequiresMACAddress": False},
    "IpamDriver.GetDefaultAddressSpaces": lambda r: {
        "LocalDefaultAddressSpace": "tlocal", "GlobalDefaultAddressSpace": "tglobal"},
    "IpamDriver.RequestPool": request_pool,
    "IpamDriver.RequestAddress": request_address,
    "IpamDriver.ReleaseAddress": release_address,
    "IpamDriver.ReleasePool": release_pool,
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(n) or b"{}") if n else {}
        op = self.path.lstrip("/")
        with LOCK:
            if op == "Plugin.Activate":
                out = {"Implements": ["IpamDriver"]}
            elif op == "Test.Calls":
                out = {"calls": CALLS}
            elif op == "Test.Held":
                out = {k: sorted(v) for k, v in HELD.items()}
            elif op in OPS:
                CALLS.append({"op": op, "req": req})
                out = OPS[op](req)
            else:
                out = {"Err": "unknown call " + op}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass


if os.path.exists(SOCK):
    os.unlink(SOCK)
socketserver.ThreadingUnixStreamServer(SOCK, Handler).serve_forever()
