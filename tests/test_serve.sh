#!/bin/sh
# test_serve.sh RADDINO DATA — raddino serve end to end with the tiny model: a collection of
# test images and a DICOM file is indexed, the server started on a free loopback port (--port
# 0, the port read from its ready line), and the API checked with Python's urllib: stats, image
# rows (DICOM UIDs), thumbnails are PNG, search by id finds itself first, an uploaded image
# finds its stored copy first, bad and oversized uploads, unknown ids, path-like URLs, wrong
# methods, concurrent requests, the page, clusters, the token (missing, wrong, right), a
# non-loopback address refused without a token, and SIGTERM ending it with exit 0.
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

$PY - "$RADDINO" "$DB" "$C" <<'PYEOF'
import concurrent.futures, json, os, select, signal, subprocess, sys, threading, time
import urllib.request
import urllib.error

raddino, db, col = sys.argv[1:4]
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
    def __init__(self, *args):
        self.p = subprocess.Popen([raddino, "serve", "--db", db, "--port", "0", *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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

    def stop(self):
        """SIGTERM, then poll for the exit (bounded); returns the exit code or None."""
        self.p.send_signal(signal.SIGTERM)
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
finally:
    check(s.stop() == 0, "SIGTERM with token")

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
