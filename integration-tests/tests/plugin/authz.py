"""An authorization plugin for berth's tests, run on the host as a legacy
plugin (SOCKET: its socket's path). Docker's AuthZPlugin protocol: a
container create labelled authz=deny is refused, an answer that shows the
label authz=secret is refused, anything else is allowed. /Test.Calls
tells what it was asked."""

import base64
import http.server
import json
import os
import socketserver
import sys

SOCK = os.environ["SOCKET"]
CALLS = []


def body_of(req, key):
    raw = req.get(key)
    if not raw:
        return None
    try:
        return json.loads(base64.b64decode(raw))
    except ValueError:
        return "not json"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(n) or b"{}") if n else {}
        op = self.path.lstrip("/")
        out = {"Allow": True}
        if op == "Plugin.Activate":
            out = {"Implements": ["authz"]}
        elif op == "AuthZPlugin.AuthZReq":
            body = body_of(req, "RequestBody")
            CALLS.append({"op": "req", "method": req.get("RequestMethod"),
                          "uri": req.get("RequestUri"), "body": body,
                          "headers": req.get("RequestHeaders", {}),
                          "user": req.get("User", "")})
            labels = (body or {}).get("Labels") if isinstance(body, dict) else None
            if (labels or {}).get("authz") == "deny":
                out = {"Allow": False, "Msg": "containers labelled deny are not allowed"}
        elif op == "AuthZPlugin.AuthZRes":
            body = body_of(req, "ResponseBody")
            CALLS.append({"op": "res", "method": req.get("RequestMethod"),
                          "uri": req.get("RequestUri"),
                          "status": req.get("ResponseStatusCode"),
                          "has_body": body is not None})
            if '"authz":"secret"' in json.dumps(body, separators=(",", ":")):
                out = {"Allow": False, "Msg": "secret containers are not shown"}
        elif op == "Test.Calls":
            out = {"calls": CALLS}
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
