#!/bin/sh
# test_serve_browser.sh RADDINO DATA — the page of raddino serve in a real browser: headless
# Chromium (Debian's `chromium`), driven through the DevTools protocol from Python
# (python3-websocket), on loopback only. It opens the permalink /?id=N, searches by id through
# the form, pages through results, uploads a file through the file input, and compares the
# neighbours the page shows with the API's answer for the same query each time; it checks the
# metadata panel, that the address is the permalink, that no request failed (favicon
# included), that nothing was written to the console as an error (a Content-Security-Policy
# violation would be), and takes a screenshot ($RADDINO_SCREENSHOT, default in the scratch
# folder). Exit 77 (ctest: skipped, with the reason printed) when Chromium or python3-websocket
# is not installed; .ci/run installs both.
set -u
RADDINO=$1
DATA=$2
PY=/usr/bin/python3
CHROMIUM=${RADDINO_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$CHROMIUM" ]; then
    echo "SKIP: no Chromium (apt-get install chromium; or set RADDINO_CHROMIUM)"
    exit 77
fi
if ! $PY -c "import websocket" 2>/dev/null; then
    echo "SKIP: no python3-websocket (apt-get install python3-websocket)"
    exit 77
fi
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
DB=$TMP/b.db
"$RADDINO" index --db "$DB" --quiet "$C" || { echo "FAIL: index"; exit 1; }

$PY - "$RADDINO" "$DB" "$C" "$CHROMIUM" "$TMP" "${RADDINO_SCREENSHOT:-$TMP/page.png}" <<'PYEOF'
import base64, json, os, re, select, signal, subprocess, sys, threading, time
import urllib.request
import websocket

raddino, db, col, chromium, tmp, shot = sys.argv[1:7]
failures = []
passed = 0

def check(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print("FAIL:", what, flush=True)

def ready_line(p, prefix, stream, seconds=60):
    """The first line of stream starting with prefix (read a byte at a time, bounded)."""
    end = time.monotonic() + seconds
    line = b""
    while time.monotonic() < end:
        r, _, _ = select.select([stream], [], [], max(0.0, end - time.monotonic()))
        b = os.read(stream.fileno(), 1) if r else b""
        if not b:
            break
        line += b
        if b == b"\n":
            if prefix in line:
                return line.decode().strip()
            line = b""
    raise SystemExit("FAIL: no '%s' line" % prefix.decode())

server = subprocess.Popen([raddino, "serve", "--db", db, "--port", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
args = [chromium, "--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
        "--disable-extensions", "--disable-background-networking", "--disable-sync",
        "--remote-debugging-port=0", "--remote-allow-origins=*", "--window-size=1200,1000",
        "--user-data-dir=" + os.path.join(tmp, "profile"), "about:blank"]
if os.getuid() == 0:
    args.insert(1, "--no-sandbox")     # Chromium's sandbox refuses to run as root
browser = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           start_new_session=True)
watchdog = threading.Timer(240, lambda: (server.kill(), os.killpg(browser.pid, signal.SIGKILL)))
watchdog.daemon = True
watchdog.start()
ws = None
try:
    base = ready_line(server, b"listening on", server.stdout)[len("listening on "):]
    devtools = ready_line(browser, b"DevTools listening on", browser.stderr)
    dport = re.search(r"ws://127\.0\.0\.1:(\d+)/", devtools).group(1)
    targets = json.loads(urllib.request.urlopen("http://127.0.0.1:%s/json/list" % dport, timeout=30).read())
    page = next(t for t in targets if t["type"] == "page")
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
    events = []
    next_id = [0]

    def cdp(method, **params):
        next_id[0] += 1
        ws.send(json.dumps({"id": next_id[0], "method": method, "params": params}))
        while True:
            m = json.loads(ws.recv())
            if m.get("id") == next_id[0]:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            events.append(m)

    def js(expr):
        r = cdp("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("%s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def wait_js(expr, what, seconds=60):
        """Polls a page expression until it is truthy (bounded); its value."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            v = js(expr)
            if v:
                return v
            time.sleep(0.05)
        check(False, "timed out: " + what)
        return None

    def api_ids(body, query=""):
        h = {"Content-Type": "application/json"} if isinstance(body, dict) else {}
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(base + "/api/search" + query, data=data, headers=h)
        with urllib.request.urlopen(req, timeout=60) as r:
            return ",".join(str(x["id"]) for x in json.loads(r.read())["results"])

    def shown_after(action, what):
        """Runs a page action and waits for a new list of result ids."""
        js("document.getElementById('results').removeAttribute('data-ids')")
        js(action)
        return wait_js("document.getElementById('results')?.getAttribute('data-ids')", what)

    cdp("Runtime.enable")
    cdp("Log.enable")
    cdp("Network.enable")
    cdp("Page.enable")

    # the permalink: /?id=2 opens with image 2 as the query
    cdp("Page.navigate", url=base + "/?id=2")
    got = wait_js("document.getElementById('results')?.getAttribute('data-ids')", "results of /?id=2")
    check(got == api_ids({"id": 2, "k": 12}), "permalink results %r vs API %r" % (got, api_ids({"id": 2, "k": 12})))
    meta = js("document.getElementById('meta') ? document.getElementById('meta').textContent : ''")
    check("sha256" in meta and "status" in meta and "ok" in meta, "metadata panel: %r" % meta[:200])

    # search by id through the form, 2 per page, then the next page; the address follows
    dicom_id = next(i for i in range(1, 7) if json.loads(urllib.request.urlopen(base + "/api/images/%d" % i).read())["format"] == "dicom")
    got = shown_after("document.getElementById('k').value = '2';"
                      "document.getElementById('qid').value = '%d';"
                      "document.getElementById('idgo').click()" % dicom_id, "search by id")
    want = api_ids({"id": dicom_id, "k": 6}).split(",")
    check(got == ",".join(want[:2]), "page 1 by id: %r vs API %r" % (got, want[:2]))
    check(js("location.search") == "?id=%d" % dicom_id, "permalink in the address: %r" % js("location.search"))
    meta = js("document.getElementById('meta').textContent")
    check("sop_instance_uid" in meta and "1.2." in meta, "DICOM fields in the panel: %r" % meta[:300])
    got = shown_after("document.getElementById('next').click()", "next page")
    check(got == ",".join(want[2:4]), "page 2 by id: %r vs API %r" % (got, want[2:4]))
    check(js("document.getElementById('pageno').textContent") == "page 2", "page number")

    # upload through the file input (as a user choosing a file)
    up = os.path.join(col, "rgb8_640x480.jpg")
    js("document.getElementById('results').removeAttribute('data-ids')")
    doc = cdp("DOM.getDocument")
    node = cdp("DOM.querySelector", nodeId=doc["root"]["nodeId"], selector="#file")
    cdp("DOM.setFileInputFiles", files=[up], nodeId=node["nodeId"])
    got = wait_js("document.getElementById('results')?.getAttribute('data-ids')", "upload results")
    want = api_ids(open(up, "rb").read(), "?k=2")
    check(got == want, "upload results %r vs API %r" % (got, want))
    check(got and got.split(",")[0] == str(next(i for i in range(1, 7) if json.loads(urllib.request.urlopen(base + "/api/images/%d" % i).read())["path"] == up)),
          "the upload's stored copy first")
    wait_js("Array.from(document.querySelectorAll('#results img')).every(i => i.complete && i.naturalWidth > 0)",
            "thumbnails loaded")

    shot_data = base64.b64decode(cdp("Page.captureScreenshot", format="png")["data"])
    with open(shot, "wb") as f:
        f.write(shot_data)
    check(shot_data[:8] == b"\x89PNG\r\n\x1a\n" and len(shot_data) > 20000, "screenshot: %d bytes" % len(shot_data))
    print("screenshot:", shot)

    # nothing failed: no 4xx/5xx response (the favicon), no console error (CSP), no exception
    cdp("Runtime.evaluate", expression="1")
    bad = [e["params"]["response"]["url"] + " " + str(e["params"]["response"]["status"]) for e in events
           if e.get("method") == "Network.responseReceived" and e["params"]["response"]["status"] >= 400]
    check(not bad, "failed requests: %r" % bad)
    errs = [e["params"]["entry"]["text"] for e in events
            if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"]
    errs += [str(e["params"]) for e in events if e.get("method") == "Runtime.exceptionThrown"]
    errs += [str(e["params"]["args"]) for e in events
             if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error"]
    check(not errs, "console errors: %r" % errs[:5])
    favicon = [e for e in events if e.get("method") == "Network.responseReceived" and "favicon" in e["params"]["response"]["url"]]
    check(not favicon or favicon[0]["params"]["response"]["status"] == 200, "favicon answered")
finally:
    if ws:
        ws.close()
    try:
        os.killpg(browser.pid, signal.SIGTERM)
        browser.wait(timeout=30)
    except Exception:
        os.killpg(browser.pid, signal.SIGKILL)
    server.send_signal(signal.SIGTERM)
    try:
        check(server.wait(timeout=30) == 0, "serve stopped")
    except subprocess.TimeoutExpired:
        server.kill()
        check(False, "serve did not stop")
    watchdog.cancel()

print("serve_browser: %d passed, %d failed" % (passed, len(failures)))
sys.exit(1 if failures else 0)
PYEOF
