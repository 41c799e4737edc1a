"""A loopback OTLP/HTTP receiver for bench/otlp-export.sh: answers 200 to every POST and
counts requests and bytes on the wire (the body as sent, compressed or not). GET /stats
returns {"requests": n, "bytes": n}; POST /reset zeroes them. Prints its port on stdout.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
stats = {"requests": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, body, content_type="application/json"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            self.reply(json.dumps(stats).encode())

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        remaining = n
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        with lock:
            if self.path == "/reset":
                stats["requests"] = stats["bytes"] = 0
            else:
                stats["requests"] += 1
                stats["bytes"] += n
        # An empty ExportTraceServiceResponse in the request's own encoding.
        if "protobuf" in (self.headers.get("Content-Type") or ""):
            self.reply(b"", "application/x-protobuf")
        else:
            self.reply(b"{}")


server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
