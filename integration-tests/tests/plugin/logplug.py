"""A log driver plugin for berth's tests, run as a managed plugin: Docker's
LogDriver protocol. StartLogging reads the FIFO it names (LogEntry
protobufs behind their big-endian length) into /data/<container id>.log,
one JSON object per entry; /Test.Logs tells them and the Info each start
gave."""

import http.server
import json
import os
import socketserver
import struct
import sys
import threading

SOCK = "/run/docker/plugins/" + os.environ.get("SOCKET", "tlog.sock")
DATA = "/data"
INFO = {}
STOPPED = []
LOCK = threading.Lock()


def varint(b, i):
    shift = n = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        if c < 0x80:
            return n, i
        shift += 7


def decode(msg):
    """LogEntry: source=1 (string), time_nano=2, line=3 (bytes), partial=4."""
    out = {"source": "", "time_nano": 0, "line": "", "partial": False}
    i = 0
    while i < len(msg):
        key, i = varint(msg, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(msg, i)
            if field == 2:
                out["time_nano"] = v
            elif field == 4:
                out["partial"] = bool(v)
        elif wire == 2:
            n, i = varint(msg, i)
            v = msg[i:i + n]
            i += n
            if field == 1:
                out["source"] = v.decode()
            elif field == 3:
                out["line"] = v.decode(errors="replace")
        else:
            raise ValueError("unexpected wire type %d" % wire)
    return out


def follow(path, cid):
    with open(path, "rb", buffering=0) as f, open(os.path.join(DATA, cid + ".log"), "a") as out:
        while True:
            head = f.read(4)
            if len(head) < 4:
                return
            (n,) = struct.unpack(">I", head)
            msg = b""
            while len(msg) < n:
                chunk = f.read(n - len(msg))
                if not chunk:
                    return
                msg += chunk
            out.write(json.dumps(decode(msg)) + "\n")
            out.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(n) or b"{}") if n else {}
        op = self.path.lstrip("/")
        out = {}
        if op == "Plugin.Activate":
            out = {"Implements": ["LogDriver"]}
        elif op == "LogDriver.StartLogging":
            info = req.get("Info", {})
            cid = info.get("ContainerID", "unknown")
            with LOCK:
                INFO.setdefault(cid, []).append({"File": req.get("File"), "Info": info})
            threading.Thread(target=follow, args=(req["File"], cid), daemon=True).start()
        elif op == "LogDriver.StopLogging":
            with LOCK:
                STOPPED.append(req.get("File"))
        elif op == "LogDriver.Capabilities":
            out = {"Cap": {"ReadLogs": False}}
        elif op == "Test.Logs":
            cid = req.get("ID", "")
            path = os.path.join(DATA, cid + ".log")
            entries = []
            if os.path.exists(path):
                with open(path) as f:
                    entries = [json.loads(line) for line in f]
            with LOCK:
                out = {"entries": entries, "starts": INFO.get(cid, []), "stopped": list(STOPPED)}
        else:
            out = {"Err": "unknown call " + op}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("tlog: " + (fmt % args) + "\n")


os.makedirs(DATA, exist_ok=True)
if os.path.exists(SOCK):
    os.unlink(SOCK)
socketserver.ThreadingUnixStreamServer(SOCK, Handler).serve_forever()
