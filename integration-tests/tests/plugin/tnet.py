"""A network driver plugin for berth's tests, run on the host as a legacy
plugin (SOCKET: its socket's path). libnetwork's remote driver protocol,
the way simple veth plugins implement it: a network is a Linux bridge the
plugin makes (named after the network, holding its gateway address), an
endpoint a veth pair whose host end hangs from that bridge and whose other
end the engine moves into the container. A network created with the
driver option `fail` is refused, one with `badroute` joins containers
with a static route the kernel refuses; DSTPREFIX names the interfaces' prefix in
the container (default eth). /Test.Calls tells what it was asked."""

import http.server
import json
import os
import socketserver
import subprocess
import threading

SOCK = os.environ["SOCKET"]
PREFIX = os.environ.get("DSTPREFIX", "eth")
CALLS = []
NETWORKS = {}
BAD_ROUTES = set()
LOCK = threading.Lock()


def ip(*args):
    out = subprocess.run(["ip", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), out.stderr.strip()))


def forward(op, br):
    try:
        subprocess.run(["iptables", "-w", op, "FORWARD", "-i", br, "-o", br, "-j", "ACCEPT"],
                       capture_output=True)
    except OSError:  # no iptables where it runs: its bridge stays filtered
        pass


def bridge_of(network_id):
    return "tn-" + network_id[:12]


def create_network(req):
    generic = (req.get("Options") or {}).get("com.docker.network.generic") or {}
    if "fail" in generic:
        return {"Err": "tnet refuses this network: " + generic["fail"]}
    gateway = ((req.get("IPv4Data") or [{}])[0] or {}).get("Gateway", "")
    br = bridge_of(req["NetworkID"])
    ip("link", "add", br, "type", "bridge")
    if gateway:
        ip("addr", "add", gateway, "dev", br)
    ip("link", "set", br, "up")
    # Traffic between the bridge's ports passes a host whose FORWARD
    # policy drops (Docker's, berth's).
    forward("-I", br)
    NETWORKS[req["NetworkID"]] = gateway.split("/")[0]
    if "badroute" in generic:
        BAD_ROUTES.add(req["NetworkID"])
    return {}


def join(req):
    eid = req["EndpointID"]
    host, inside = "tnh" + eid[:8], "tnc" + eid[:8]
    ip("link", "add", host, "type", "veth", "peer", "name", inside)
    ip("link", "set", host, "master", bridge_of(req["NetworkID"]))
    ip("link", "set", host, "up")
    out = {"InterfaceName": {"SrcName": inside, "DstPrefix": PREFIX}}
    gateway = NETWORKS.get(req["NetworkID"], "")
    if gateway:
        out["Gateway"] = gateway
    if req["NetworkID"] in BAD_ROUTES:
        # A next hop on no link of the container's.
        out["StaticRoutes"] = [{"Destination": "10.200.0.0/16", "RouteType": 0,
                                "NextHop": "192.0.2.1"}]
    return out


def delete_endpoint(req):
    host = "tnh" + req["EndpointID"][:8]
    if os.path.exists("/sys/class/net/" + host):
        ip("link", "del", host)
    return {}


def delete_network(req):
    br = bridge_of(req["NetworkID"])
    forward("-D", br)
    if os.path.exists("/sys/class/net/" + br):
        ip("link", "del", br)
    NETWORKS.pop(req["NetworkID"], None)
    return {}


OPS = {
    "NetworkDriver.GetCapabilities": lambda r: {"Scope": "local", "ConnectivityScope": "local"},
    "NetworkDriver.CreateNetwork": create_network,
    "NetworkDriver.DeleteNetwork": delete_network,
    "NetworkDriver.CreateEndpoint": lambda r: {},
    "NetworkDriver.DeleteEndpoint": delete_endpoint,
    "NetworkDriver.Join": join,
    "NetworkDriver.Leave": lambda r: {},
    "NetworkDriver.EndpointOperInfo": lambda r: {"Value": {}},
    "NetworkDriver.ProgramExternalConnectivity": lambda r: {},
    "NetworkDriver.RevokeExternalConnectivity": lambda r: {},
    "NetworkDriver.DiscoverNew": lambda r: {},
    "NetworkDriver.DiscoverDelete": lambda r: {},
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(n) or b"{}") if n else {}
        op = self.path.lstrip("/")
        with LOCK:
            if op == "Plugin.Activate":
                out = {"Implements": ["NetworkDriver"]}
            elif op == "Test.Calls":
                out = {"calls": CALLS}
            elif op in OPS:
                CALLS.append({"op": op, "req": req})
                try:
                    out = OPS[op](req)
                except Exception as e:  # the engine is told, as plugins tell it
                    out = {"Err": str(e)}
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
