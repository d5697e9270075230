#!/bin/sh
# test_serve.sh RADDINO DATA — raddino serve end to end with the tiny model: a collection of
# test images and a DICOM file is indexed, the server started on a free loopback port (--port
# 0, the port read from its ready line), and the API checked with Python's urllib: stats, image
# rows (DICOM UIDs), thumbnails are PNG, search by id finds itself first, an uploaded image
# finds its stored copy first, bad and oversized uploads, unknown ids, path-like URLs, wrong
# methods, concurrent requests, the page, clusters, the token (missing, wrong, right; judged
# before the body), a non-loopback address refused without a token, and SIGTERM ending it with
# exit 0. Then issue 17's findings: security headers, Host names (DNS rebinding), Origin,
# bodies capped before buffering (GET, JSON 32 KiB), one k rule, nothing after the JSON,
# exclude_self for uploads, multipart forms, the upload pixel cap and JPEG scan budget (bombs
# from serve_bombs.py), thumbnails by content hash (ETag, 304, a replaced file 409), the total
# request deadline, no log line per aborted connection, a decode cancelled when its client goes,
# the WAL checkpointed while serving, SIGINT/SIGTERM (inherited SIG_IGN, a request in progress,
# the pthread OpenBLAS when installed), serving without the model, --allow-host, and the peak
# memory of a large PNG decode.
set -u
RADDINO=$1
DATA=$2
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

unset RADDINO_DB RADDINO_SERVE_TOKEN
export RADDINO_MODEL="$DATA/models/tiny"
C=$TMP/col
mkdir -p "$C/dcm"
for f in gray8_300x400.png gray8_518x518.png rgb8_640x480.jpg xray_mhh_0a7faa2a.png \
         xray_nih_00000075_000.png; do
    cp "$DATA/images/$f" "$C/$f"
done
cp "$DATA/dicom/dx_image.dcm" "$C/dcm/dx_image.dcm"
DB=$TMP/s.db
"$RADDINO" index --db "$DB" --quiet "$C" || { echo "FAIL: index"; exit 1; }
"$RADDINO" cluster --db "$DB" -k 2 >/dev/null 2>&1 || { echo "FAIL: cluster"; exit 1; }

$PY - "$RADDINO" "$DB" "$C" "$(dirname "$0")" <<'PYEOF'
import concurrent.futures, json, os, select, signal, subprocess, sys, threading, time
import urllib.request
import urllib.error

raddino, db, col, bombs_dir = sys.argv[1:5]
failures = []
passed = 0

def check(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print("FAIL:", what, flush=True)

class Server:
    """raddino serve on a free loopback port; killed at the latest after 120 s."""
    def __init__(self, *args, env=None, sigint_ignored=False, database=None):
        def child():    # as a non-interactive shell starts a background job
            if sigint_ignored:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.p = subprocess.Popen([raddino, "serve", "--db", database or db, "--port", "0", *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env, preexec_fn=child)
        self.watchdog = threading.Timer(120, self.p.kill)   # a hung server cannot outlive it
        self.watchdog.daemon = True
        self.watchdog.start()
        line = b""
        while not line.endswith(b"\n"):
            r, _, _ = select.select([self.p.stdout], [], [], 60)
            chunk = os.read(self.p.stdout.fileno(), 1) if r else b""
            if not chunk:
                raise SystemExit("FAIL: no ready line; stderr: %r" % self.p.stderr.read())
            line += chunk
        line = line.decode().strip()
        assert line.startswith("listening on http://127.0.0.1:"), line
        self.base = line[len("listening on "):]

    def stop(self, sig=signal.SIGTERM):
        """The signal, then wait for the exit (bounded); returns the exit code or None."""
        self.p.send_signal(sig)
        try:
            return self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None
        finally:
            self.watchdog.cancel()

def request(base, path, data=None, headers=None, method=None):
    """(status, headers, body bytes) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(base + path, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()

def is_json_error(body):
    try:
        return isinstance(json.loads(body).get("error"), str)
    except Exception:
        return False

def search_id(base, i, k=3, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return request(base, "/api/search", json.dumps({"id": i, "k": k}).encode(), h)

s = Server()
try:
    base = s.base
    st, _, body = request(base, "/api/stats")
    stats = json.loads(body)
    check(st == 200 and stats["images"] == 6 and stats["vectors"] == 6 and stats["dicom"] == 1,
          "stats: %s" % body)

    # image rows: every stored id answers, the DICOM one with its UIDs
    paths = {}
    for i in range(1, 7):
        st, h, body = request(base, "/api/images/%d" % i)
        row = json.loads(body)
        check(st == 200 and row["id"] == i and row["path"].startswith(col), "image %d" % i)
        paths[i] = row["path"]
        if row["format"] == "dicom":
            check(row["dicom"]["sop_instance_uid"].startswith("1.2."), "DICOM UIDs: %s" % body)
    check(any(p.endswith("dx_image.dcm") for p in paths.values()), "the DICOM file is stored")
    st, _, body = request(base, "/api/images/99")
    check(st == 404 and is_json_error(body), "unknown id 404: %d %r" % (st, body))

    # thumbnails (the DICOM one too): PNG, longest side capped
    for i in range(1, 7):
        st, h, body = request(base, "/api/images/%d/thumbnail?size=64" % i)
        ok = st == 200 and h["Content-Type"] == "image/png" and body[:8] == b"\x89PNG\r\n\x1a\n"
        w = int.from_bytes(body[16:20], "big") if ok else 0
        hgt = int.from_bytes(body[20:24], "big") if ok else 0
        check(ok and max(w, hgt) == 64, "thumbnail %d: %d %s %dx%d" % (i, st, h.get("Content-Type"), w, hgt))

    # search by id: itself first, score 1
    for i in range(1, 7):
        st, _, body = search_id(base, i)
        res = json.loads(body)["results"] if st == 200 else []
        check(st == 200 and len(res) == 3 and res[0]["id"] == i and abs(res[0]["score"] - 1) < 1e-4,
              "search id %d: %d %r" % (i, st, body[:200]))
    st, _, body = request(base, "/api/search", json.dumps({"id": 1, "k": 2, "exclude_self": True}).encode(),
                          {"Content-Type": "application/json"})
    check(st == 200 and all(r["id"] != 1 for r in json.loads(body)["results"]), "exclude_self")
    st, _, body = search_id(base, 99)
    check(st == 404 and is_json_error(body), "search unknown id 404: %d" % st)

    # search with an uploaded image: its stored copy first
    png = open(os.path.join(col, "gray8_300x400.png"), "rb").read()
    for name in ("rgb8_640x480.jpg", "xray_mhh_0a7faa2a.png", "dcm/dx_image.dcm"):
        data = open(os.path.join(col, name), "rb").read()
        st, _, body = request(base, "/api/search", data, {"Content-Type": "application/octet-stream"})
        res = json.loads(body)["results"] if st == 200 else []
        check(st == 200 and res and res[0]["path"].endswith(name) and res[0]["score"] > 0.9999,
              "upload %s: %d %r" % (name, st, body[:300]))

    st, _, body = request(base, "/api/search?k=2", png, {})
    check(st == 200 and len(json.loads(body)["results"]) == 2, "upload with ?k=2")

    # bad requests: JSON errors, never a crash
    bad = [(b"not an image at all", {}, 400, "garbage upload"),
           (png[:200], {}, 400, "truncated PNG"),
           (b"", {}, 400, "empty body"),
           (b"{\"id\": \"1\"}", {"Content-Type": "application/json"}, 400, "id as a string"),
           (b"{\"id\": 1, \"k\": 0}", {"Content-Type": "application/json"}, 400, "k 0"),
           (b"{\"id\": ", {"Content-Type": "application/json"}, 400, "broken JSON")]
    for data, h, want, what in bad:
        st, _, body = request(base, "/api/search", data, h, method="POST")
        check(st == want and is_json_error(body), "%s: %d %r" % (what, st, body[:200]))

    # path-like URLs: never a file's contents
    for path in ("/api/images/../../etc/passwd", "/api/images/%2e%2e/%2e%2e/etc/passwd",
                 "/api/images/1/../../../../etc/passwd", "/api/images/-1", "/api/images/1.0",
                 "/api/images/%2fetc%2fpasswd/thumbnail", "/etc/passwd", "/api/images/1/x"):
        st, _, body = request(base, path)
        check(st in (400, 404) and b"root:" not in body and is_json_error(body),
              "path-like %s: %d" % (path, st))

    st, h, body = request(base, "/api/stats", b"x", method="POST")
    check(st == 405 and is_json_error(body), "POST stats: 405, got %d" % st)
    st, h, body = request(base, "/api/search")
    check(st == 405 and h.get("Allow") == "POST", "GET search: 405, got %d" % st)
    st, _, body = request(base, "/nothing/here")
    check(st == 404 and is_json_error(body), "unknown route 404")

    # the page and the clusters of `raddino cluster -k 2`
    st, h, body = request(base, "/")
    check(st == 200 and h["Content-Type"].startswith("text/html") and b"/api/search" in body,
          "page")
    st, _, body = request(base, "/api/clusters")
    cl = json.loads(body)
    check(st == 200 and cl["run"]["k"] == 2 and sum(c["size"] for c in cl["clusters"]) == 6,
          "clusters: %r" % body[:300])

    # concurrent requests: searches by id, uploads and thumbnails at once, all right
    def one(n):
        kind = n % 3
        if kind == 0:
            st, _, body = search_id(base, n % 6 + 1)
            return st == 200 and json.loads(body)["results"][0]["id"] == n % 6 + 1
        if kind == 1:
            st, _, body = request(base, "/api/search", png, {})
            return st == 200 and json.loads(body)["results"][0]["path"].endswith("gray8_300x400.png")
        st, _, body = request(base, "/api/images/%d/thumbnail" % (n % 6 + 1))
        return st == 200 and body[:4] == b"\x89PNG"
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(120)))
    check(all(results), "concurrent requests: %d of %d right" % (sum(results), len(results)))
finally:
    code = s.stop()
check(code == 0, "SIGTERM: exit %r" % code)

# the upload cap: over it 413 (declared or chunked length), under it served; the pixel cap
s = Server("--max-upload", "1K")
try:
    st, _, body = request(s.base, "/api/search", b"x" * 2048, {})
    check(st == 413 and is_json_error(body), "over --max-upload: 413, got %d" % st)
    chunks = (b"y" * 512 for _ in range(4))     # no Content-Length: Transfer-Encoding: chunked
    st, _, body = request(s.base, "/api/search", chunks, {}, method="POST")
    check(st == 413 and is_json_error(body), "chunked over --max-upload: 413, got %d" % st)
    tiny = open(os.path.join(col, "gray8_300x400.png"), "rb").read()
    s2 = Server("--max-pixels", "10000")
    try:
        st, _, body = request(s2.base, "/api/search", tiny, {})
        check(st == 413 and is_json_error(body), "over --max-pixels: 413, got %d %r" % (st, body))
    finally:
        check(s2.stop() == 0, "SIGTERM after pixel cap")
    st, _, body = request(s.base, "/api/search", b"{\"id\": 1}", {"Content-Type": "application/json"})
    check(st == 200, "under --max-upload: 200, got %d" % st)
finally:
    check(s.stop() == 0, "SIGTERM after upload cap")

# the token: every API request must carry it
s = Server("--token", "s3cret-token")
try:
    st, h, body = request(s.base, "/api/stats")
    check(st == 401 and is_json_error(body), "no token: 401, got %d" % st)
    st, _, _ = request(s.base, "/api/stats", headers={"Authorization": "Bearer wrong"})
    check(st == 401, "wrong token: 401, got %d" % st)
    st, _, _ = request(s.base, "/api/stats", headers={"Authorization": "Bearer s3cret-token-x"})
    check(st == 401, "longer token: 401, got %d" % st)
    st, _, _ = search_id(s.base, 1)
    check(st == 401, "search without token: 401, got %d" % st)
    st, _, body = request(s.base, "/api/stats", headers={"Authorization": "Bearer s3cret-token"})
    check(st == 200 and json.loads(body)["images"] == 6, "right token: 200, got %d" % st)
    st, _, _ = search_id(s.base, 1, headers={"Authorization": "Bearer s3cret-token"})
    check(st == 200, "search with token: 200, got %d" % st)
    # the token is judged from the headers: a 50 MB body never sent is not waited for
    import socket
    host, port = s.base[len("http://"):].split(":")
    c = socket.create_connection((host, int(port)), timeout=20)
    c.sendall(b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50000000\r\n\r\n")
    answer = c.recv(200)
    c.close()
    check(answer.startswith(b"HTTP/1.1 401"), "token before the body: %r" % answer[:40])
finally:
    check(s.stop() == 0, "SIGTERM with token")

# ---- issue 17: the server as an attacker and a hospital network would see it ----
import socket, sqlite3
sys.path.insert(0, bombs_dir)
import serve_bombs

def raw(base, data, read=True, timeout=30):
    """Sends bytes on a fresh connection; the whole answer (until the server closes or 'timeout')."""
    host, port = base[len("http://"):].split(":")
    c = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        c.sendall(data)
        if not read:
            return c
        out = b""
        while True:
            try:
                b = c.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            out += b
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if n and len(rest) >= n[0]:
                    break
        return out
    finally:
        if read:
            c.close()

def status_of(answer):
    try:
        return int(answer.split(b" ", 2)[1])
    except Exception:
        return 0

def stats(base):
    return json.loads(request(base, "/api/stats")[2])

def vm_hwm_mib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return -1

def wait_for(what, cond, seconds=20):
    """Polls cond (a server answer) until true or the deadline; never a fixed sleep."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    failures.append("timed out waiting for " + what)
    print("FAIL: timed out waiting for", what, flush=True)
    return False

s = Server()
try:
    base = s.base
    port = base.rsplit(":", 1)[1]
    png_bytes = open(os.path.join(col, "gray8_300x400.png"), "rb").read()
    # security headers on the page and the API; the page's policy names its script by hash
    for path in ("/", "/api/stats"):
        st, h, _ = request(base, path)
        check(h.get("X-Frame-Options") == "DENY" and h.get("X-Content-Type-Options") == "nosniff"
              and h.get("Referrer-Policy") == "no-referrer"
              and "frame-ancestors 'none'" in (h.get("Content-Security-Policy") or ""),
              "security headers on %s: %r" % (path, dict(h)))
    st, h, _ = request(base, "/")
    check("script-src 'sha256-" in h.get("Content-Security-Policy", "") and
          "unsafe-inline" not in h.get("Content-Security-Policy", ""), "page CSP: %r" % h.get("Content-Security-Policy"))
    st, h, body = request(base, "/favicon.ico")
    check(st == 200 and h["Content-Type"] == "image/svg+xml" and b"<svg" in body, "favicon: %d" % st)

    # DNS rebinding: only the names the server listens as
    for host, want in (("evil.example", 421), ("evil.example:" + port, 421), ("127.0.0.2:" + port, 421),
                       ("localhost:" + port, 200), ("127.0.0.1:" + port, 200), ("[::1]:" + port, 200),
                       ("LOCALHOST", 200)):
        a = raw(base, ("GET /api/stats HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
        check(status_of(a) == want, "Host %s: %d, expected %d" % (host, status_of(a), want))
    a = raw(base, ("GET / HTTP/1.1\r\nHost: evil.example:%s\r\nConnection: close\r\n\r\n" % port).encode())
    check(status_of(a) == 421 and b"<html" not in a, "rebinding page: %d" % status_of(a))

    # another site's page (a no-cors POST or a form) is refused; the server's own page is not
    for origin, want in (("http://evil.example", 403), ("null", 403), ("http://localhost:1", 403),
                         ("http://127.0.0.1:" + port, 200)):
        st, _, body = request(base, "/api/search", b'{"id": 1}', {"Content-Type": "application/json",
                                                                  "Origin": origin})
        check(st == want, "Origin %s: %d, expected %d" % (origin, st, want))
    st, _, _ = request(base, "/api/search", png_bytes, {"Content-Type": "text/plain", "Origin": "http://evil.example"})
    check(st == 403, "no-cors upload from another site: %d" % st)

    # bodies judged before they are buffered
    st, _, body = request(base, "/", b"x" * 1000, method="GET")
    check(st == 400 and is_json_error(body), "GET / with a body: %d" % st)
    big = b'{"id": 1, "pad": "' + b"x" * 40000 + b'"}'
    st, _, body = request(base, "/api/search", big, {"Content-Type": "application/json"})
    check(st == 413 and is_json_error(body), "40 KB JSON: %d" % st)
    chunks = (b'{"id": 1, "k": 2' if i == 0 else b" " * 4096 for i in range(10))
    st, _, body = request(base, "/api/search", chunks, {"Content-Type": "application/json"}, method="POST")
    check(st == 413, "chunked JSON over 32 KiB: %d" % st)

    # k: one rule for the query string, forms and JSON; nothing after the JSON
    png = open(os.path.join(col, "gray8_300x400.png"), "rb").read()
    for q in ("k=0", "k=-1", "k=1001", "k=abc", "k="):
        st, _, body = request(base, "/api/search?" + q, png, {})
        check(st == 400 and b"k must be" in body, "upload ?%s: %d %r" % (q, st, body[:100]))
    st, _, body = request(base, "/api/search", b'{"id": 1, "k": 0}', {"Content-Type": "application/json"})
    check(st == 400 and b"k must be" in body, "JSON k 0: %d %r" % (st, body))
    for tail in (b" x", b"{}", b" ]"):
        st, _, body = request(base, "/api/search", b'{"id": 1}' + tail, {"Content-Type": "application/json"})
        check(st == 400 and is_json_error(body), "JSON with %r after it: %d" % (tail, st))
    st, _, body = request(base, "/api/search", b'{"id": 1}\n  ', {"Content-Type": "application/json"})
    check(st == 200, "JSON with white space after it: %d" % st)

    # "leave out the query" for uploads: the stored copy (same bytes) is not in the results
    st, _, body = request(base, "/api/search?k=3&exclude_self=1", png, {})
    res = json.loads(body)["results"] if st == 200 else []
    check(st == 200 and len(res) == 3 and all(not r["path"].endswith("gray8_300x400.png") for r in res),
          "upload exclude_self: %d %r" % (st, body[:300]))

    # multipart/form-data, as curl -F and browsers' forms send it
    def form(fields, files):
        b = "----raddino%d" % os.getpid()
        out = b""
        for k, v in fields:
            out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (b, k, v)).encode()
        for k, name, data in files:
            out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n" % (b, k, name)).encode() + data + b"\r\n"
        out += ("--%s--\r\n" % b).encode()
        return out, {"Content-Type": "multipart/form-data; boundary=" + b}
    jpg = open(os.path.join(col, "rgb8_640x480.jpg"), "rb").read()
    body_, h = form([("k", "2")], [("image", "x.jpg", jpg)])
    st, _, body = request(base, "/api/search", body_, h)
    res = json.loads(body)["results"] if st == 200 else []
    check(st == 200 and len(res) == 2 and res[0]["path"].endswith("rgb8_640x480.jpg") and res[0]["score"] > 0.9999,
          "multipart upload: %d %r" % (st, body[:300]))
    body_, h = form([("k", "3"), ("exclude_self", "on")], [("file", "x.jpg", jpg)])
    st, _, body = request(base, "/api/search", body_, h)
    res = json.loads(body)["results"] if st == 200 else []
    check(st == 200 and len(res) == 3 and all(not r["path"].endswith("rgb8_640x480.jpg") for r in res),
          "multipart exclude_self: %d %r" % (st, body[:200]))
    body_, h = form([("k", "0")], [("image", "x.jpg", jpg)])
    st, _, body = request(base, "/api/search", body_, h)
    check(st == 400 and b"k must be" in body, "multipart k 0: %d" % st)
    body_, h = form([("k", "2")], [])
    st, _, body = request(base, "/api/search", body_, h)
    check(st == 400 and b"no file field" in body, "multipart without a file: %d %r" % (st, body))

    # uploads: their own pixel cap (32 MP) refuses a 186 KB PNG of 14000 x 14000 from its header
    bomb = serve_bombs.png_zeros(14000, 14000)
    st, _, body = request(base, "/api/search", bomb, {})
    check(st == 413 and b"over the pixel limit of 32000000" in body, "14000x14000 PNG: %d %r" % (st, body[:200]))
    # a progressive JPEG with more scans than the budget (64)
    st, _, body = request(base, "/api/search", serve_bombs.jpeg_scans(1000, 1000, 200), {})
    check(st == 400 and b"more than 64 scans" in body, "200-scan JPEG: %d %r" % (st, body[:200]))
    st, _, body = request(base, "/api/search", serve_bombs.jpeg_scans(512, 512, 20), {})
    check(st == 200, "20-scan JPEG: %d %r" % (st, body[:200]))
    check(vm_hwm_mib(s.p.pid) < 400, "peak RSS after the bombs: %.0f MiB" % vm_hwm_mib(s.p.pid))

    # thumbnails: ETag = content hash, 304 on If-None-Match
    st, h, body = request(base, "/api/images/2/thumbnail?size=64")
    etag = h.get("ETag")
    check(st == 200 and etag and len(etag) > 60, "thumbnail ETag: %r" % etag)
    st, h2, body2 = request(base, "/api/images/2/thumbnail?size=64", headers={"If-None-Match": etag})
    check(st == 304 and not body2, "If-None-Match: %d" % st)
    st, h3, body3 = request(base, "/api/images/2/thumbnail?size=64")
    check(st == 200 and body3 == body and h3.get("ETag") == etag, "cached thumbnail the same")

    # a connection that trickles its headers is closed at the deadline (--timeout), which bytes
    # do not reset: tested with its own server below. Aborted connections: not one log line each.
finally:
    code = s.stop()
err = s.p.stderr.read().decode(errors="replace")
check(code == 0, "SIGTERM: exit %r" % code)

# replaced file: never shown under its old id
rowpath = paths[2]
saved = open(rowpath, "rb").read()
saved_stat = os.stat(rowpath)
s = Server()
try:
    st, h, before = request(s.base, "/api/images/2/thumbnail?size=64")
    etag = h.get("ETag")
    other = open(os.path.join(col, "xray_mhh_0a7faa2a.png"), "rb").read()
    with open(rowpath, "wb") as f:
        f.write(other)
    st, _, body = request(s.base, "/api/images/2/thumbnail?size=64")
    check(st == 409 and is_json_error(body), "replaced file: %d" % st)
    st, _, body = request(s.base, "/api/images/2/thumbnail?size=64", headers={"If-None-Match": etag})
    check(st == 409, "replaced file with If-None-Match: %d" % st)
finally:
    with open(rowpath, "wb") as f:
        f.write(saved)
    os.utime(rowpath, ns=(saved_stat.st_atime_ns, saved_stat.st_mtime_ns))
    s.stop()

# the deadline and the log: a connection sending a header line every 0.3 s is closed after
# --timeout 2 s all the same; 40 aborted connections leave at most a couple of log lines
s = Server("--timeout", "2")
try:
    c = raw(s.base, b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n", read=False)
    start = time.monotonic()
    closed = False
    while time.monotonic() - start < 10:
        try:
            c.sendall(b"X-Slow: 1\r\n")
            c.settimeout(0.3)
            if c.recv(100) == b"":
                closed = True
                break
        except socket.timeout:
            pass
        except OSError:
            closed = True
            break
    took = time.monotonic() - start
    c.close()
    check(closed and took < 5, "trickling connection closed at the deadline: %s after %.1f s" % (closed, took))
    for i in range(40):
        c = raw(s.base, b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nabc", read=False)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        c.close()
    st, _, _ = request(s.base, "/api/stats")
    check(st == 200, "answers after aborted connections")
finally:
    s.stop()
lines = [l for l in s.p.stderr.read().decode(errors="replace").splitlines() if "stopped" not in l]
check(len(lines) <= 3, "log lines for 40 aborted connections: %d %r" % (len(lines), lines[:5]))

# cancellation: a costly upload whose client goes away stops decoding
s = Server("--upload-max-scans", "100000")
try:
    costly = serve_bombs.jpeg_scans(4000, 4000, 20000)
    c = raw(s.base, b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(costly) + costly, read=False)
    if wait_for("the decode to start", lambda: stats(s.base)["uploads"]["decoding"] == 1):
        c.close()
        check(wait_for("the decode to stop", lambda: stats(s.base)["uploads"]["cancelled"] == 1 and
                       stats(s.base)["uploads"]["decoding"] == 0, 15), "decode cancelled")
    c.close()
finally:
    check(s.stop() == 0, "SIGTERM after a cancelled upload")

# WAL: serve holds no read transaction between requests, so index can checkpoint
s = Server()
try:
    st, _, _ = request(s.base, "/api/stats")
    cp = os.path.join(col, "more.png")
    open(cp, "wb").write(open(os.path.join(col, "xray_mhh_0a7faa2a.png"), "rb").read() + b"")
    p = subprocess.run([raddino, "index", "--db", db, "--quiet", col], capture_output=True, timeout=120)
    check(p.returncode == 0, "index while serving: %d %r" % (p.returncode, p.stderr[-300:]))
    con = sqlite3.connect(db)
    busy, log, done = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    con.close()
    wal = db + "-wal"
    check(busy == 0 and (not os.path.exists(wal) or os.path.getsize(wal) == 0),
          "checkpoint while serving: busy %d, WAL %d bytes" % (busy, os.path.getsize(wal) if os.path.exists(wal) else 0))
    st, _, body = request(s.base, "/api/images/7")
    check(st == 200 and json.loads(body)["path"].endswith("more.png"), "a row indexed since start: %d" % st)
    st, _, _ = search_id(s.base, 1)
    check(st == 200, "search after the checkpoint")
    os.remove(cp)
finally:
    check(s.stop() == 0, "SIGTERM after the checkpoint")

# a request in progress when SIGTERM comes is answered before the server exits
s = Server("--upload-max-scans", "100000")
try:
    slow_jpeg = serve_bombs.jpeg_scans(4000, 4000, 300)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=request(s.base, "/api/search", slow_jpeg, {})))
    t.start()
    wait_for("the slow decode to start", lambda: stats(s.base)["uploads"]["decoding"] == 1)
    code = s.stop()
    t.join(60)
    check(code == 0 and result.get("r", (0,))[0] == 200,
          "SIGTERM during a request: exit %r, answer %r" % (code, result.get("r", (0,))[0]))
finally:
    if s.p.poll() is None:
        s.stop()

# stopping: SIGINT stops; SIGINT ignored by the parent (a background job of a script) stays
# ignored and SIGTERM stops; with the pthread OpenBLAS (its threads exist before main) too
s = Server()
check(s.stop(signal.SIGINT) == 0 and b"stopped (SIGINT)" in s.p.stderr.read(), "SIGINT stops")
s = Server(sigint_ignored=True)
try:
    s.p.send_signal(signal.SIGINT)
    st, _, _ = request(s.base, "/api/stats")
    check(st == 200 and s.p.poll() is None, "SIGINT ignored when inherited so")
finally:
    code = s.stop()
check(code == 0 and b"stopped (SIGTERM)" in s.p.stderr.read(), "SIGTERM after an ignored SIGINT: %r" % code)
pthread_dir = os.environ.get("RADDINO_PTHREAD_BLAS_DIR", "/usr/lib/x86_64-linux-gnu/openblas-pthread")
if os.path.exists(os.path.join(pthread_dir, "libopenblas.so.0")):
    env = dict(os.environ, LD_LIBRARY_PATH=pthread_dir)
    for sig in (signal.SIGTERM, signal.SIGINT):
        s = Server(env=env)
        maps = open("/proc/%d/maps" % s.p.pid).read()
        check(pthread_dir in maps, "the pthread OpenBLAS is loaded")
        st, _, _ = search_id(s.base, 1)
        code = s.stop(sig)
        check(code == 0 and b"stopped" in s.p.stderr.read(), "pthread OpenBLAS, signal %d: exit %r" % (sig, code))
else:
    print("SKIP: no pthread OpenBLAS at %s (libopenblas0-pthread): stopping with its threads not tested" % pthread_dir)

# without the model: browsing and search by id work, uploads answer a clear error
env = dict(os.environ, RADDINO_MODEL=os.path.join(col, "no-such-model"))
s = Server(env=env)
try:
    st, _, body = search_id(s.base, 1)
    check(st == 200, "search by id without the model: %d" % st)
    st, _, body = request(s.base, "/api/search", png, {})
    check(st == 503 and b"no model" in body, "upload without the model: %d %r" % (st, body))
    st, _, body = request(s.base, "/api/stats")
    check(json.loads(body)["model_loaded"] is False, "stats say no model")
finally:
    check(s.stop() == 0, "SIGTERM without the model")

# memory of a decode: a non-interlaced PNG is stored row by row in its final form, so a 31 MP
# 8-bit RGBA PNG costs its 3-byte RGB result (94 MB), not 4 + 3 bytes a pixel (220 MB)
asan = b"libasan" in subprocess.run([raddino], env=dict(os.environ, LD_TRACE_LOADED_OBJECTS="1"),
                                    capture_output=True).stdout
peak = subprocess.run([sys.executable, "-c",
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], input=sys.stdin.buffer.read(), capture_output=True)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
    raddino, "embed", "/dev/stdin"], input=serve_bombs.png_zeros(5600, 5600, 8, 6),
    capture_output=True, env=dict(os.environ, RADDINO_MODEL=os.environ["RADDINO_MODEL"]))
peak_mib = int(peak.stdout.split()[-1]) / 1024
print("peak RSS decoding a 5600 x 5600 RGBA PNG: %.0f MiB" % peak_mib)
if not asan:    # AddressSanitizer's allocator and shadow memory change the figure
    check(peak_mib < 180, "5600 x 5600 RGBA PNG decoded in %.0f MiB, over 180" % peak_mib)

# --allow-host: a DNS name the server is reached by, with or without the port
s = Server("--allow-host", "xray.example,pacs.example")
try:
    port = s.base.rsplit(":", 1)[1]
    for host, want in (("xray.example", 200), ("pacs.example:" + port, 200), ("other.example", 421)):
        a = raw(s.base, ("GET /api/stats HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
        check(status_of(a) == want, "--allow-host, Host %s: %d, expected %d" % (host, status_of(a), want))
finally:
    check(s.stop() == 0, "SIGTERM with --allow-host")

# searches that arrive together are batched (--search-batch, default 64): each answer is the one
# the same search gets alone, and the one the one-at-a-time path (--search-batch 0) gives
def queries():
    out = []
    for i in range(1, 7):
        for k in (1, 3, 6):
            out.append({"id": i, "k": k})
            out.append({"id": i, "k": k, "exclude_self": True})
    return out

def answer(base, q):
    st, _, body = request(base, "/api/search", json.dumps(q).encode(),
                          {"Content-Type": "application/json"})
    return st, body

one = Server("--search-batch", "0")
try:
    before = [answer(one.base, q) for q in queries()]
finally:
    check(one.stop() == 0, "SIGTERM with --search-batch 0")
s = Server()
try:
    alone = [answer(s.base, q) for q in queries()]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda q: answer(s.base, q), queries() * 3))
    check(all(a[0] == 200 for a in alone), "batched searches: statuses %r" % [a[0] for a in alone])
    n = len(alone)
    check(all(together[i] == alone[i % n] for i in range(len(together))),
          "searches at once answered as alone")
    def same_results(r0, r1):
        """Scores rank by rank; ids too, except that equal scores (the collection holds a copy
        of a file) may come in another order, and a tie at the end may keep another id."""
        if len(r0) != len(r1) or any(abs(x["score"] - y["score"]) > 2e-6 for x, y in zip(r0, r1)):
            return False
        i = 0
        while i < len(r0):
            j = i
            while j + 1 < len(r0) and abs(r0[j + 1]["score"] - r0[i]["score"]) <= 2e-6:
                j += 1
            if j + 1 < len(r0) and {r["id"] for r in r0[i:j + 1]} != {r["id"] for r in r1[i:j + 1]}:
                return False
            i = j + 1
        return True
    differ = []
    for (st0, b0), (st1, b1) in zip(before, alone):
        if st0 != st1 or not same_results(json.loads(b0).get("results"), json.loads(b1).get("results")):
            differ.append((b0, b1))
    check(not differ, "batched searches: the ids and scores of one at a time: %r" % differ[:2])
    st, _, body = request(s.base, "/api/stats")
    b = json.loads(body).get("search_batches", {})
    check(b.get("queries", 0) >= 4 * n and b.get("largest", 0) >= 1 and b.get("max_batch") == 64,
          "stats: search_batches %r" % b)
    # bad requests in a batch still get one clear error each
    bad = [({"id": 1, "k": 0}, 400), ({"id": 999999, "k": 3}, 404),
           ({"vector": [1, 2], "k": 3}, 400), ({"id": 1, "k": 1001}, 400)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda qb: answer(s.base, qb[0]), bad * 2))
    check(all(g[0] == w and is_json_error(g[1]) for g, (_, w) in zip(got, bad * 2)),
          "bad searches among others: %r" % [g[0] for g in got])
finally:
    check(s.stop() == 0, "SIGTERM after batched searches")
for arg in ("-1", "1025", "x"):
    p = subprocess.run([raddino, "serve", "--db", db, "--search-batch", arg], capture_output=True, timeout=60)
    check(p.returncode == 2 and b"--search-batch" in p.stderr, "--search-batch %s: exit %d" % (arg, p.returncode))

# a non-loopback address without a token: refused before listening
p = subprocess.run([raddino, "serve", "--db", db, "--host", "0.0.0.0", "--port", "0"],
                   capture_output=True, timeout=60)
check(p.returncode == 2 and b"--token" in p.stderr, "0.0.0.0 without --token: exit %d %r" % (p.returncode, p.stderr))
for args, want in ((["--help"], 0), (["--port", "65536"], 2), (["--port", "-1"], 2),
                   (["--max-upload", "0"], 2), (["--token", ""], 2), (["extra"], 2)):
    p = subprocess.run([raddino, "serve", "--db", db, *args], capture_output=True, timeout=60)
    check(p.returncode == want, "serve %s: exit %d, expected %d" % (args, p.returncode, want))
p = subprocess.run([raddino, "serve", "--db", db, "--host", "not-an-address"],
                   capture_output=True, timeout=60)
check(p.returncode == 2, "bad --host: exit %d" % p.returncode)
p = subprocess.run([raddino, "serve", "--db", db + ".missing", "--port", "0"], capture_output=True, timeout=60)
check(p.returncode == 1, "missing database: exit %d" % p.returncode)

print("%d passed, %d failed" % (passed, len(failures)))
sys.exit(1 if failures else 0)
PYEOF
