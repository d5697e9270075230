#!/bin/sh
# test_serve_abuse.sh RADDINO DATA — raddino serve under a bounded attack on loopback, which
# stops by itself: 200 slow connections (headers trickled a byte at a time), decompression
# bombs uploaded by 4 clients at once (31 MP PNG and progressive JPEG within the upload caps,
# 16-bit RGBA PNG, a 196 MP PNG over them), requests with rebinding Host headers; meanwhile a
# well-behaved client asks for stats and searches every 0.2 s. Passes when every one of its
# requests is answered right within LATENCY_S and the server's peak RSS (VmHWM) stays under
# HWM_MIB; both are printed. Under AddressSanitizer (its shadow memory and slower code) both
# bounds are tripled.
set -u
RADDINO=$1
DATA=$2
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

unset RADDINO_DB RADDINO_SERVE_TOKEN
export RADDINO_MODEL="$DATA/models/tiny"
C=$TMP/col
mkdir -p "$C"
for f in gray8_300x400.png gray8_518x518.png rgb8_640x480.jpg xray_mhh_0a7faa2a.png; do
    cp "$DATA/images/$f" "$C/$f"
done
DB=$TMP/a.db
"$RADDINO" index --db "$DB" --quiet "$C" || { echo "FAIL: index"; exit 1; }

$PY - "$RADDINO" "$DB" "$(dirname "$0")" <<'PYEOF'
import json, os, select, signal, socket, subprocess, sys, threading, time
import urllib.request, urllib.error

raddino, db, here = sys.argv[1:4]
sys.path.insert(0, here)
import serve_bombs

asan = b"libasan" in subprocess.run([raddino], env=dict(os.environ, LD_TRACE_LOADED_OBJECTS="1"),
                                    capture_output=True).stdout
LATENCY_S = 5.0 * (3 if asan else 1)
HWM_MIB = 700 * (3 if asan else 1)
ATTACK_S = 20
failures = []

def fail(what):
    failures.append(what)
    print("FAIL:", what, flush=True)

p = subprocess.Popen([raddino, "serve", "--db", db, "--port", "0", "--timeout", "30"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
watchdog = threading.Timer(240, p.kill)     # the test ends, whatever happens
watchdog.daemon = True
watchdog.start()
r, _, _ = select.select([p.stdout], [], [], 60)
line = p.stdout.readline().decode().strip() if r else ""
if not line.startswith("listening on http://127.0.0.1:"):
    p.kill()
    raise SystemExit("FAIL: no ready line: %r %r" % (line, p.stderr.read()))
base = line[len("listening on "):]
port = int(base.rsplit(":", 1)[1])
stop = threading.Event()

def post(path, data, headers, timeout=60):
    req = urllib.request.Request(base + path, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return -1, str(e).encode()

# 200 slow connections, each trickling one header byte a second
slow = []
for i in range(200):
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        c.setblocking(False)
        slow.append(c)
    except OSError:
        pass
print("slow connections opened: %d" % len(slow), flush=True)

def trickle():
    while not stop.wait(1.0):
        for c in slow:
            try:
                c.send(b"X")
            except OSError:
                pass

bombs = [("31 MP grey PNG", serve_bombs.png_zeros(5600, 5600)),
         ("8 MP 16-bit RGBA PNG", serve_bombs.png_zeros(2800, 2800, 16, 6)),
         ("31 MP 64-scan JPEG", serve_bombs.jpeg_scans(5600, 5600, 63)),
         ("196 MP PNG", serve_bombs.png_zeros(14000, 14000)),
         ("100-scan JPEG", serve_bombs.jpeg_scans(2000, 2000, 100))]
bomb_answers = {}
lock = threading.Lock()

def bomber(n):
    i = n
    while not stop.is_set():
        name, data = bombs[i % len(bombs)]
        st, _ = post("/api/search", data, {"Content-Type": "application/octet-stream"})
        with lock:
            bomb_answers.setdefault(name, []).append(st)
        i += 1

rebind = []
def rebinder():
    while not stop.is_set():
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.sendall(b"GET /api/stats HTTP/1.1\r\nHost: attacker.example:%d\r\nConnection: close\r\n\r\n" % port)
            a = c.recv(100)
            c.close()
            rebind.append(a.split(b" ")[1] if a else b"closed")
        except OSError as e:
            rebind.append(b"error")
        stop.wait(0.05)

threads = [threading.Thread(target=trickle)] + [threading.Thread(target=bomber, args=(n,)) for n in range(4)] \
          + [threading.Thread(target=rebinder)]
for t in threads:
    t.daemon = True
    t.start()

latencies = []
most_decoding = most_waiting = 0
start = time.monotonic()
n = 0
while time.monotonic() - start < ATTACK_S:
    t0 = time.monotonic()
    if n % 2:
        st, body = post("/api/search", b'{"id": 1, "k": 2}', {"Content-Type": "application/json"},
                        timeout=LATENCY_S * 4)
        ok = st == 200 and json.loads(body)["results"][0]["id"] == 1
    else:
        try:
            with urllib.request.urlopen(base + "/api/stats", timeout=LATENCY_S * 4) as r:
                st = json.loads(r.read())
                ok = r.status == 200 and st["images"] == 4
                most_decoding = max(most_decoding, st["uploads"]["decoding"])
                most_waiting = max(most_waiting, st["uploads"]["waiting"])
        except Exception as e:
            ok = False
    dt = time.monotonic() - t0
    latencies.append(dt)
    if not ok or dt > LATENCY_S:
        fail("well-behaved request %d: ok %s after %.2f s" % (n, ok, dt))
    n += 1
    stop.wait(0.2)
stop.set()
for t in threads:
    t.join(timeout=90)
for c in slow:
    c.close()

hwm = -1
for l in open("/proc/%d/status" % p.pid):
    if l.startswith("VmHWM:"):
        hwm = int(l.split()[1]) / 1024
latencies.sort()
print("well-behaved requests: %d, latency median %.3f s, max %.3f s (bound %.1f s)" %
      (len(latencies), latencies[len(latencies) // 2], latencies[-1], LATENCY_S))
print("server peak RSS (VmHWM): %.0f MiB (bound %d MiB)" % (hwm, HWM_MIB))
for name, sts in sorted(bomb_answers.items()):
    print("bomb %-22s answers: %s" % (name, {s: sts.count(s) for s in sorted(set(sts))}))
print("rebinding requests: %d, answers %s" % (len(rebind), sorted(set(rebind))))
print("uploads decoding at once: at most %d seen (bound 2), waiting %d" % (most_decoding, most_waiting))
if most_decoding > 2:
    fail("%d uploads decoded at once" % most_decoding)
if hwm < 0 or hwm > HWM_MIB:
    fail("peak RSS %.0f MiB over %d MiB" % (hwm, HWM_MIB))
if not rebind or any(a != b"421" for a in rebind):
    fail("rebinding Host answered other than 421: %r" % sorted(set(rebind)))
if not all(s == 413 for s in bomb_answers.get("196 MP PNG", [])):
    fail("196 MP PNG not refused with 413")
if not all(s == 400 for s in bomb_answers.get("100-scan JPEG", [])):
    fail("100-scan JPEG not refused with 400")
if not any(s == 200 for s in bomb_answers.get("31 MP grey PNG", []) + bomb_answers.get("31 MP 64-scan JPEG", [])):
    fail("no bomb within the caps was decoded (the test would prove nothing)")
p.send_signal(signal.SIGTERM)
try:
    code = p.wait(timeout=60)
except subprocess.TimeoutExpired:
    p.kill()
    code = None
watchdog.cancel()
if code != 0:
    fail("SIGTERM after the attack: exit %r" % code)
err = p.stderr.read().decode(errors="replace").splitlines()
print("server log lines: %d" % len(err))
if len(err) > 10:
    fail("log flooded: %d lines" % len(err))
print("serve_abuse: %d failed" % len(failures))
sys.exit(1 if failures else 0)
PYEOF
