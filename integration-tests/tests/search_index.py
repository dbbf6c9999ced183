"""A registry index on this machine that answers Docker Hub's v1 search
(`GET /v1/search?q=…&n=…`, and dockerd's `/v1/_ping`), for `docker search`
tests: the term `T` finds `T-0` … `T-4`, `T-i` with i stars, `T-0`
official and `T-1` automated. Run alone, it prints its port and serves
until killed."""

import http.server
import json
import sys
import threading
import urllib.parse


def serve():
    """Starts an index on a free loopback port: (server, "127.0.0.1:port",
    the list of (path, query) it was asked)."""
    asked = []

    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(url.query)
            asked.append((url.path, q))
            if url.path == "/v1/_ping":
                body = b"true"
            else:
                term = q.get("q", [""])[0]
                results = [{"name": f"{term}-{i}", "description": f"number {i}",
                            "star_count": i, "is_official": i == 0, "is_automated": i == 1}
                           for i in range(5)]
                body = json.dumps({"num_results": 5, "query": term,
                                   "results": results}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}", asked


if __name__ == "__main__":
    server, where, _ = serve()
    print(where.split(":")[1], flush=True)
    sys.stdin.read()  # until the test closes our stdin (or kills us)
    server.shutdown()
