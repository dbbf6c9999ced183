"""A volume plugin for berth's tests, run as a managed plugin: Docker's
plugin protocol (JSON over HTTP on /run/docker/plugins/<socket>) with the
VolumeDriver interface, its volumes directories under ROOT (the plugin's
propagated mount). /Test.Env tells what the process was started with.
Run on the host as a legacy plugin, SOCKET is an absolute path, or
PORT_FILE names where the port of its TCP listener on 127.0.0.1 goes."""

import http.server
import json
import os
import shutil
import socketserver
import sys

ROOT = os.environ.get("ROOT", "/data")
SOCK = os.path.join("/run/docker/plugins", os.environ.get("SOCKET", "tvol.sock"))
CALLS = []


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}") if n else {}
        op = self.path.lstrip("/")
        name = body.get("Name", "")
        path = os.path.join(ROOT, name)
        CALLS.append(op if not body.get("ID") else op + " " + body["ID"][:12])
        out = {}
        if op == "Plugin.Activate":
            out = {"Implements": ["VolumeDriver"]}
        elif op == "VolumeDriver.Create":
            os.makedirs(path, exist_ok=True)
        elif op == "VolumeDriver.Remove":
            shutil.rmtree(path, ignore_errors=True)
        elif op in ("VolumeDriver.Mount", "VolumeDriver.Path"):
            out = {"Mountpoint": path}
        elif op == "VolumeDriver.Unmount":
            pass
        elif op == "VolumeDriver.Get":
            if os.path.isdir(path):
                out = {"Volume": {"Name": name, "Mountpoint": path,
                                  "Status": {"debug": os.environ.get("DEBUG")}}}
            else:
                out = {"Err": "no such volume"}
        elif op == "VolumeDriver.List":
            out = {"Volumes": [{"Name": v, "Mountpoint": os.path.join(ROOT, v)}
                               for v in sorted(os.listdir(ROOT))]}
        elif op == "VolumeDriver.Capabilities":
            out = {"Capabilities": {"Scope": os.environ.get("SCOPE", "local")}}
        elif op == "Test.Env":
            out = {"pid": os.getpid(), "argv": sys.argv[1:], "calls": CALLS,
                   "env": dict(os.environ)}
        else:
            out = {"Err": "unknown call " + op}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("tvol: " + (fmt % args) + "\n")


os.makedirs(ROOT, exist_ok=True)
if os.environ.get("PORT_FILE"):
    server = socketserver.TCPServer(("127.0.0.1", 0), Handler)
    with open(os.environ["PORT_FILE"] + ".new", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(os.environ["PORT_FILE"] + ".new", os.environ["PORT_FILE"])
    print("tvol: listening on port", server.server_address[1], flush=True)
    server.serve_forever()
if os.path.exists(SOCK):
    os.unlink(SOCK)
print("tvol: listening on", SOCK, flush=True)
socketserver.UnixStreamServer(SOCK, Handler).serve_forever()
