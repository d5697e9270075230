#!/usr/bin/env python3
"""hub_server.py MODEL_DIR LOG [LIFETIME_S] -- a loopback stand-in for the Hugging Face Hub.

Serves the files of MODEL_DIR (the golden tiny model) the way huggingface.co does:
  HEAD/GET /{org}/{name}/resolve/{revision}/{file}
    small files: 200, ETag = git blob sha1, X-Repo-Commit, Content-Length
    .safetensors (LFS): 302 to http://localhost:PORT/cdn/..., the real Hub's CDN redirect, with
      X-Linked-Etag = sha256, X-Linked-Size, X-Repo-Commit (and an unrelated ETag)
  GET /cdn/...: the bytes, with Range support; refuses (400) any request carrying an
    Authorization header, so a token leaked to the CDN's host fails the test.
Repositories:
  microsoft/rad-dino    the model (revisions main, v1, and the commit hash)
  test/gated            401 GatedRepo without "Authorization: Bearer secret-token"
  test/corrupt          model.safetensors served with one byte changed
  test/flaky            the first download of model.safetensors breaks after half its bytes
  test/backbone-only    no model.safetensors (404 EntryNotFound)
  anything else         404 RepoNotFound; unknown revision 404 RevisionNotFound
Listens on 127.0.0.1, port chosen by the system; prints the port on stdout as its ready line,
then closes stdout. Appends one JSON line per request to LOG. Exits by itself after LIFETIME_S
(default 120) seconds so that a test that dies cannot leave it behind.
"""
import hashlib
import http.server
import json
import os
import socket
import sys
import threading

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "secret-token"
REPOS = {"microsoft/rad-dino", "test/gated", "test/corrupt", "test/flaky", "test/backbone-only"}
REVISIONS = {"main", "v1", COMMIT}


def load_files(model_dir):
    files = {}
    for name in sorted(os.listdir(model_dir)):
        with open(os.path.join(model_dir, name), "rb") as f:
            data = f.read()
        git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        files[name] = {"data": data, "sha256": hashlib.sha256(data).hexdigest(),
                       "sha1": git_sha1, "lfs": name.endswith(".safetensors")}
    return files


class Hub(http.server.BaseHTTPRequestHandler):
    server_version = "FakeHub/1.0"

    def log_message(self, fmt, *args):
        pass

    def record(self):
        entry = {"method": self.command, "path": self.path, "host": self.headers.get("Host", ""),
                 "range": self.headers.get("Range"),
                 "auth": self.headers.get("Authorization") is not None}
        with open(self.server.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def reply(self, status, headers, body=b""):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def error(self, status, code, message):
        self.reply(status, {"X-Error-Code": code, "X-Error-Message": message},
                   message.encode())

    def do_HEAD(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def handle_any(self):
        self.record()
        parts = self.path.split("?")[0].split("/")
        if len(parts) == 5 and parts[1] == "cdn":
            return self.cdn(parts[2] + "/" + parts[3], parts[4])
        if len(parts) != 6 or parts[3] != "resolve":
            return self.error(404, "RepoNotFound", "Repository not found")
        repo, revision, name = parts[1] + "/" + parts[2], parts[4], parts[5]
        if repo not in REPOS:
            return self.error(404, "RepoNotFound", "Repository not found")
        if repo == "test/gated" and self.headers.get("Authorization") != "Bearer " + TOKEN:
            return self.error(401, "GatedRepo", "Access to model test/gated is restricted")
        if revision not in REVISIONS:
            return self.error(404, "RevisionNotFound", "Invalid rev id: " + revision)
        f = self.server.files.get(name)
        if f is None or (repo == "test/backbone-only" and name == "model.safetensors"):
            return self.error(404, "EntryNotFound", name + " does not exist")
        common = {"X-Repo-Commit": COMMIT}
        if f["lfs"]:
            host = "localhost:%d" % self.server.server_address[1]
            common.update({"Location": "http://%s/cdn/%s/%s" % (host, repo, name),
                           "X-Linked-Etag": '"%s"' % f["sha256"],
                           "X-Linked-Size": str(len(f["data"])),
                           "ETag": '"%s"' % f["sha1"]})
            return self.reply(302, common, b"Found. Redirecting")
        common["ETag"] = '"%s"' % f["sha1"]
        self.send_bytes(f["data"], common)

    def cdn(self, repo, name):
        if self.headers.get("Authorization") is not None:
            return self.error(400, "AuthorizationLeaked", "the token was sent to the CDN")
        f = self.server.files.get(name)
        if f is None or repo not in REPOS:
            return self.error(404, "NoSuchKey", "no such object")
        data = f["data"]
        if repo == "test/corrupt" and name == "model.safetensors":
            data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
        drop = None
        if repo == "test/flaky" and name == "model.safetensors" and self.command == "GET":
            with self.server.lock:
                if not self.server.dropped:
                    self.server.dropped = True
                    drop = len(data) // 2
        self.send_bytes(data, {"ETag": '"cdn-object-etag"'}, drop)

    def send_bytes(self, data, headers, drop=None):
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng:
            if not rng.startswith("bytes=") or not rng.endswith("-"):
                return self.error(400, "BadRange", "only bytes=N- ranges")
            start = int(rng[6:-1])
            if start >= len(data):
                return self.reply(416, {"Content-Range": "bytes */%d" % len(data)})
            status = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
        body = data[start:]
        headers["Content-Length"] = str(len(body))
        headers["Accept-Ranges"] = "bytes"
        if drop is None or self.command == "HEAD":
            return self.reply(status, headers, body)
        # Announce everything, send part of it, then hang up: a connection lost mid-transfer.
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body[:drop])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


def main():
    model_dir, log_path = sys.argv[1], sys.argv[2]
    lifetime = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    server.daemon_threads = True
    server.files = load_files(model_dir)
    server.log_path = log_path
    server.lock = threading.Lock()
    server.dropped = False
    timer = threading.Timer(lifetime, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    try:
        os.close(1)
    except OSError:
        pass
    server.serve_forever()


if __name__ == "__main__":
    main()
