#!/usr/bin/python3
"""ngram-live-python: a thread-per-request web service (http.server.ThreadingHTTPServer).

DELIBERATELY VULNERABLE (an attack target for the ngram-ids live evaluation; never deploy):
  /tool/wc?file=NAME   runs `sh -c "wc -c /srv/data/NAME"` (command injection through NAME)
  /read?name=NAME      returns the file /srv/data/NAME (path traversal through NAME)
  POST /upload?name=N  writes /srv/www/uploads/N (path traversal through N: ../page.html)
  /fetch?url=URL       fetches URL and returns its start (server-side request forgery)
Other handlers: / and /static/FILE (static files), /api/items (JSON API: GET, POST, DELETE),
/api/stats (JSON), /tool/uptime (runs a fixed command).
"""
import hashlib
import json
import os
import signal
import subprocess
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATIC = "/srv/www"
DATA = "/srv/data"
ITEMS = {}
LOCK = threading.Lock()
NEXT = [1]
TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".txt": "text/plain"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/json"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        p = url.path
        if p == "/" or p.startswith("/static/"):
            name = "index.html" if p == "/" else os.path.basename(p[len("/static/"):])
            path = os.path.join(STATIC, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                return self.reply(404, '{"error": "not found"}')
            return self.reply(200, data, TYPES.get(os.path.splitext(name)[1], "application/octet-stream"))
        if p == "/api/items":
            with LOCK:
                items = sorted(ITEMS.values(), key=lambda i: i["id"])
            return self.reply(200, json.dumps(items))
        if p.startswith("/api/items/"):
            with LOCK:
                item = ITEMS.get(p.rsplit("/", 1)[1])
            return self.reply(200, json.dumps(item)) if item else self.reply(404, '{"error": "no such item"}')
        if p == "/api/stats":
            with open("/proc/loadavg") as f:
                load = f.read().split()[:3]
            with LOCK:
                n = len(ITEMS)
            return self.reply(200, json.dumps({"items": n, "load": load, "threads": threading.active_count()}))
        if p == "/api/hash":
            data = q.get("data", [""])[0].encode()
            return self.reply(200, json.dumps({"sha256": hashlib.sha256(data).hexdigest()}))
        if p == "/tool/uptime":
            out = subprocess.run(["cat", "/proc/uptime"], capture_output=True, text=True, timeout=20)
            return self.reply(200, out.stdout, "text/plain")
        if p == "/tool/wc":  # VULNERABLE: command injection
            name = q.get("file", ["a.txt"])[0]
            out = subprocess.run("wc -c /srv/data/" + name, shell=True, capture_output=True, text=True, timeout=20)
            return self.reply(200, out.stdout + out.stderr, "text/plain")
        if p == "/fetch":  # VULNERABLE: server-side request forgery
            url = q.get("url", [""])[0]
            try:
                with urllib.request.urlopen(url, timeout=3) as r:
                    data = r.read(1000)
            except (OSError, ValueError) as e:
                return self.reply(502, str(e), "text/plain")
            return self.reply(200, data, "text/plain")
        if p == "/read":  # VULNERABLE: path traversal
            name = q.get("name", [""])[0]
            try:
                with open(os.path.join(DATA, name), "rb") as f:
                    data = f.read()
            except OSError as e:
                return self.reply(404, str(e), "text/plain")
            return self.reply(200, data, "text/plain")
        return self.reply(404, '{"error": "not found"}')

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/items":
            try:
                item = json.loads(self.body() or b"{}")
            except ValueError:
                return self.reply(400, '{"error": "bad json"}')
            with LOCK:
                item["id"] = str(NEXT[0])
                NEXT[0] += 1
                ITEMS[item["id"]] = item
            return self.reply(201, json.dumps(item))
        if url.path == "/upload":
            # VULNERABLE: path traversal (no basename)
            name = urllib.parse.parse_qs(url.query).get("name", ["upload.txt"])[0]
            data = self.body()
            with open(os.path.join(STATIC, "uploads", name), "wb") as f:
                f.write(data)
            return self.reply(201, json.dumps({"name": name, "bytes": len(data)}))
        return self.reply(404, '{"error": "not found"}')

    def do_DELETE(self):
        p = urllib.parse.urlsplit(self.path).path
        if p.startswith("/api/items/"):
            with LOCK:
                gone = ITEMS.pop(p.rsplit("/", 1)[1], None)
            return self.reply(200 if gone else 404, json.dumps({"deleted": bool(gone)}))
        return self.reply(404, '{"error": "not found"}')


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", 8080), Handler)
    server.daemon_threads = True
    # docker stop: shut down at once (as pid 1, the default SIGTERM action would be ignored).
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()
