#!/bin/sh
# test_hub.sh RADDINO DATA — Hugging Face cache discovery and `raddino model fetch`, end to end,
# against tests/hub_server.py: a Hub stand-in on 127.0.0.1 that this script starts and stops
# (no internet). It serves the golden tiny model as microsoft/rad-dino and a few test repos
# (gated, corrupt, flaky, backbone-only); see the server's docstring.
set -u
RADDINO=$1
DATA=$2
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
TINY=$DATA/models/tiny
IMG=$DATA/images/xray_nih_00000075_000.png
COMMIT=0123456789abcdef0123456789abcdef01234567
TMP=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP
. "$(dirname "$0")/lib.sh"

# Requests the server logged since `mark` was called.
mark() { MARK=$(wc -l <"$TMP/log"); }
since_mark() { tail -n +"$((MARK + 1))" "$TMP/log"; }
no_requests_since_mark() { [ "$(wc -l <"$TMP/log")" -eq "$MARK" ]; }
no_get_since_mark() { ! since_mark | grep -q '"method": "GET"'; }

# A clean environment: nothing of the user's Hugging Face setup may leak in.
unset RADDINO_MODEL HF_TOKEN HF_TOKEN_PATH HF_HUB_CACHE HUGGINGFACE_HUB_CACHE HF_HOME \
    HF_HUB_OFFLINE XDG_CACHE_HOME HF_ENDPOINT
export HOME="$TMP/home"
mkdir -p "$HOME"

# --- the server: its ready line (the port) comes through a FIFO, so no sleeping ---
: >"$TMP/log"
mkfifo "$TMP/ready"
$PY "$HERE/hub_server.py" "$TINY" "$TMP/log" 240 >"$TMP/ready" 2>"$TMP/server.err" &
SERVER=$!
read -r PORT <"$TMP/ready"
if [ -z "${PORT:-}" ]; then echo "FAIL: the test server did not start"; cat "$TMP/server.err"; exit 1; fi
export HF_ENDPOINT="http://127.0.0.1:$PORT"

SHA256=$(sha256sum "$TINY/model.safetensors" | cut -d' ' -f1)
git_sha1() { $PY -c 'import hashlib,sys; d=open(sys.argv[1],"rb").read(); print(hashlib.sha1(b"blob %d\0" % len(d) + d).hexdigest())' "$1"; }
CONFIG_SHA1=$(git_sha1 "$TINY/config.json")
"$RADDINO" embed --model "$TINY" "$IMG" >"$TMP/reference" 2>/dev/null || fail "embed with --model"

# --- fresh fetch into $HF_HUB_CACHE ---
C1=$TMP/c1
REPO1=$C1/models--microsoft--rad-dino
SNAP1=$REPO1/snapshots/$COMMIT
mark
expect 0 "fresh fetch" -- env HF_HUB_CACHE="$C1" "$RADDINO" model fetch
check "fetch prints the snapshot folder" -- [ "$(cat "$TMP/out")" = "$SNAP1" ]
stderr_has "sha256 $SHA256 verified" "fetch reports the verified sha256"
check "refs/main holds the commit" -- [ "$(cat "$REPO1/refs/main")" = "$COMMIT" ]
for f in config.json preprocessor_config.json model.safetensors; do
    check "$f is a symlink into blobs" -- [ -L "$SNAP1/$f" ]
    check "$f has the served bytes" -- cmp -s "$SNAP1/$f" "$TINY/$f"
done
check "LFS blob named by its sha256" -- [ "$(readlink "$SNAP1/model.safetensors")" = "../../blobs/$SHA256" ]
check "small blob named by its git sha1" -- [ "$(readlink "$SNAP1/config.json")" = "../../blobs/$CONFIG_SHA1" ]
check "no .incomplete left" -- [ -z "$(find "$C1" -name '*.incomplete')" ]
check "the big file came from the CDN host" -- grep -q '"path": "/cdn/microsoft/rad-dino/model.safetensors", "host": "localhost' "$TMP/log"
check "no token sent when none is set" -- sh -c "! grep -q '\"auth\": true' '$TMP/log'"

# --- a second fetch downloads nothing ---
mark
expect 0 "second fetch" -- env HF_HUB_CACHE="$C1" "$RADDINO" model fetch
stderr_has "already in the cache" "second fetch says so"
check "second fetch sends no GET" -- no_get_since_mark

# --- discovery: the cache we wrote is found again; embed needs no --model ---
expect 0 "embed from the cache" -- env HF_HUB_CACHE="$C1" "$RADDINO" embed "$IMG"
check "embedding from the cache equals --model's" -- cmp -s "$TMP/out" "$TMP/reference"
expect 0 "model info from the cache" -- env HF_HUB_CACHE="$C1" "$RADDINO" model info
stdout_has "found by:       Hugging Face cache $C1" "model info says the cache"
stdout_has "revision:       main (commit $COMMIT)" "model info says the revision"
expect 0 "model info --json from the cache" -- env HF_HUB_CACHE="$C1" "$RADDINO" model info --json
check "model info --json names source, repo, revision, commit" -- $PY -c "
import json, sys; d = json.load(open('$TMP/out'))
assert d['source'] == 'cache' and d['repo'] == 'microsoft/rad-dino' and d['revision'] == 'main'
assert d['commit'] == '$COMMIT' and d['model_dir'] == '$SNAP1' and d['hidden_size'] == 64"
expect 0 "model info --revision COMMIT" -- env HF_HUB_CACHE="$C1" "$RADDINO" model info --revision "$COMMIT"
expect 0 "model info via --model" -- "$RADDINO" model info --model "$TINY" --json
check "--model reported as flag" -- $PY -c "import json; d = json.load(open('$TMP/out')); assert d['source'] == 'flag' and d['commit'] is None"
expect 0 "model info via RADDINO_MODEL" -- env RADDINO_MODEL="$TINY" HF_HUB_CACHE="$C1" "$RADDINO" model info
stdout_has "found by:       \$RADDINO_MODEL" "RADDINO_MODEL reported as env"
expect 0 "--repo outranks RADDINO_MODEL" -- env RADDINO_MODEL="$TMP/nothing" HF_HUB_CACHE="$C1" "$RADDINO" model info --repo microsoft/rad-dino
expect 2 "--model with --repo" -- "$RADDINO" model info --model "$TINY" --repo microsoft/rad-dino
expect 0 "--cache-dir outranks RADDINO_MODEL" -- env RADDINO_MODEL="$TMP/nothing" "$RADDINO" model info --cache-dir "$C1"

# HF_HOME/hub, and ~/.cache/huggingface/hub when nothing is set.
expect 0 "fetch into HF_HOME" -- env HF_HOME="$TMP/hfhome" "$RADDINO" model fetch
check "HF_HOME/hub used" -- [ -L "$TMP/hfhome/hub/models--microsoft--rad-dino/snapshots/$COMMIT/model.safetensors" ]
expect 0 "embed through HF_HOME" -- env HF_HOME="$TMP/hfhome" "$RADDINO" embed "$IMG"
check "embedding through HF_HOME equals --model's" -- cmp -s "$TMP/out" "$TMP/reference"
expect 0 "model info through HF_HUB_CACHE beats HF_HOME" -- env HF_HOME="$TMP/nowhere" HF_HUB_CACHE="$C1" "$RADDINO" model info
stdout_has "$C1" "HF_HUB_CACHE first"
expect 0 "fetch into the default cache" -- "$RADDINO" model fetch
check "~/.cache/huggingface/hub used" -- [ -L "$HOME/.cache/huggingface/hub/models--microsoft--rad-dino/snapshots/$COMMIT/config.json" ]
expect 0 "embed from the default cache" -- "$RADDINO" embed "$IMG"

# --cache-dir, --revision (a tag), and revisions that do not exist.
C2=$TMP/c2
expect 0 "fetch --cache-dir --revision v1" -- "$RADDINO" model fetch --cache-dir "$C2" --revision v1
check "refs/v1 written" -- [ "$(cat "$C2/models--microsoft--rad-dino/refs/v1")" = "$COMMIT" ]
expect 0 "model info --cache-dir --revision v1" -- "$RADDINO" model info --cache-dir "$C2" --revision v1
stdout_has "revision:       v1 (commit $COMMIT)" "tag resolved"
expect 1 "revision not in the cache" -- "$RADDINO" model info --cache-dir "$C2"
stderr_has "revision 'main' is not in the Hugging Face cache" "missing ref explained"
mark
expect 1 "fetch unknown revision" -- "$RADDINO" model fetch --cache-dir "$C2" --revision nope
stderr_has "revision 'nope' not found (HTTP 404)" "unknown revision explained"

# --- errors: 404, 401, no network, usage ---
expect 1 "fetch unknown repo" -- "$RADDINO" model fetch --cache-dir "$C2" --repo nobody/nothing
stderr_has "nobody/nothing: repository not found" "404 repo explained"
stderr_has "HTTP 404" "404 named"
check "a wrong repo leaves nothing in the cache" -- [ ! -e "$C2/models--nobody--nothing" ]
expect 1 "gated repo without a token" -- "$RADDINO" model fetch --cache-dir "$C2" --repo test/gated
stderr_has "HTTP 401" "401 named"
stderr_has "HF_TOKEN" "401 says to set HF_TOKEN"
mark
expect 0 "gated repo with HF_TOKEN" -- env HF_TOKEN=secret-token "$RADDINO" model fetch --cache-dir "$C2" --repo test/gated
check "token sent to the Hub" -- sh -c "tail -n +$((MARK + 1)) '$TMP/log' | grep '/resolve/' | grep -q '\"auth\": true'"
check "token not sent to the CDN" -- sh -c "tail -n +$((MARK + 1)) '$TMP/log' | grep '/cdn/' | grep -q '\"auth\": false'"
mkdir -p "$TMP/tokenhome"; printf 'secret-token\n' >"$TMP/tokenhome/token"
expect 0 "gated repo with the saved token file" -- env HF_HOME="$TMP/tokenhome" "$RADDINO" model fetch --cache-dir "$TMP/c5" --repo test/gated
expect 1 "no network" -- env HF_ENDPOINT=http://127.0.0.1:1 "$RADDINO" model fetch --cache-dir "$TMP/c6"
stderr_has "cannot reach the Hub" "no network explained"
expect 2 "bad repo name" -- "$RADDINO" model fetch --repo ../../etc
expect 2 "bad revision" -- "$RADDINO" model info --cache-dir "$C2" --revision ../../x
expect 2 "bad endpoint" -- env HF_ENDPOINT=ftp://example.org "$RADDINO" model fetch --cache-dir "$TMP/c6"
expect 2 "fetch takes no arguments" -- "$RADDINO" model fetch extra
expect 0 "model fetch --help" -- "$RADDINO" model fetch --help

# --- nothing half-written is ever used ---
C3=$TMP/c3
expect 1 "corrupt download" -- "$RADDINO" model fetch --cache-dir "$C3" --repo test/corrupt
stderr_has "checksum mismatch" "corruption detected"
check "corrupt file removed" -- [ -z "$(find "$C3/models--test--corrupt/blobs" -name "$SHA256*")" ]
check "corrupt file not linked" -- [ ! -e "$C3/models--test--corrupt/snapshots/$COMMIT/model.safetensors" ]
expect 1 "a snapshot without weights is not used" -- "$RADDINO" model info --cache-dir "$C3" --repo test/corrupt --revision "$COMMIT"
stderr_has "incomplete snapshot" "incomplete snapshot explained"

# A connection lost halfway: resumed with a Range request within the same run.
mark
expect 0 "flaky download" -- "$RADDINO" model fetch --cache-dir "$C3" --repo test/flaky
HALF=$(( $(wc -c <"$TINY/model.safetensors") / 2 ))
stderr_has "resuming at $HALF of" "the break is reported"
check "resumed with Range bytes=$HALF-" -- sh -c "tail -n +$((MARK + 1)) '$TMP/log' | grep -q '\"range\": \"bytes=$HALF-\"'"
check "resumed file is whole" -- cmp -s "$C3/models--test--flaky/snapshots/$COMMIT/model.safetensors" "$TINY/model.safetensors"

# A partial file left by an earlier run: resumed; a partial file with wrong bytes: removed.
C4=$TMP/c4
mkdir -p "$C4/models--microsoft--rad-dino/blobs"
head -c 1000 "$TINY/model.safetensors" >"$C4/models--microsoft--rad-dino/blobs/$SHA256.incomplete"
mark
expect 0 "resume an earlier partial download" -- "$RADDINO" model fetch --cache-dir "$C4"
stderr_has "model.safetensors: resuming at 1000 of" "resume reported"
check "resumed with Range bytes=1000-" -- sh -c "tail -n +$((MARK + 1)) '$TMP/log' | grep -q '\"range\": \"bytes=1000-\"'"
check "resumed blob is whole" -- cmp -s "$C4/models--microsoft--rad-dino/blobs/$SHA256" "$TINY/model.safetensors"
rm -rf "$C4"; mkdir -p "$C4/models--microsoft--rad-dino/blobs"
head -c 1000 /dev/zero >"$C4/models--microsoft--rad-dino/blobs/$SHA256.incomplete"
expect 1 "a bad partial file is caught" -- "$RADDINO" model fetch --cache-dir "$C4"
stderr_has "checksum mismatch" "bad partial file detected"
check "bad partial file removed" -- [ ! -e "$C4/models--microsoft--rad-dino/blobs/$SHA256.incomplete" ]
expect 0 "fetch again after a mismatch" -- "$RADDINO" model fetch --cache-dir "$C4"

# Disk full: the partial file is /dev/full, whose writes fail with ENOSPC.
if [ -c /dev/full ]; then
    rm -rf "$C4"; mkdir -p "$C4/models--microsoft--rad-dino/blobs"
    ln -s /dev/full "$C4/models--microsoft--rad-dino/blobs/$SHA256.incomplete"
    expect 1 "disk full" -- "$RADDINO" model fetch --cache-dir "$C4"
    stderr_has "disk full" "disk full explained"
    check "nothing installed on a full disk" -- [ ! -e "$C4/models--microsoft--rad-dino/blobs/$SHA256" ]
fi

# A repository with only backbone_compatible.safetensors.
expect 0 "fetch falls back to backbone_compatible" -- "$RADDINO" model fetch --cache-dir "$C3" --repo test/backbone-only
check "backbone weights linked" -- [ -L "$C3/models--test--backbone-only/snapshots/$COMMIT/backbone_compatible.safetensors" ]
expect 0 "embed with the backbone-only repo" -- "$RADDINO" embed --cache-dir "$C3" --repo test/backbone-only "$IMG"

# --- offline: never a request ---
mark
expect 0 "offline fetch with the model cached" -- env HF_HUB_OFFLINE=1 HF_HUB_CACHE="$C1" "$RADDINO" model fetch
stderr_has "HF_HUB_OFFLINE" "offline says so"
expect 1 "offline fetch with an empty cache" -- env HF_HUB_OFFLINE=1 "$RADDINO" model fetch --cache-dir "$TMP/empty"
stderr_has "HF_HUB_OFFLINE is set, so nothing is downloaded" "offline refusal says why"
expect 0 "offline embed" -- env HF_HUB_OFFLINE=1 HF_HUB_CACHE="$C1" "$RADDINO" embed "$IMG"
check "offline: no request reached the server" -- no_requests_since_mark

# --- nothing anywhere, and a damaged cache ---
expect 1 "no model at all" -- env HF_HUB_CACHE="$TMP/empty" "$RADDINO" embed "$IMG"
stderr_has "raddino model fetch" "no model suggests fetch"
stderr_has "RADDINO_MODEL" "no model mentions RADDINO_MODEL"
# A named repo and revision that are not cached: the library says what is missing, the command
# how to get it.
expect 1 "named model not cached" -- env HF_HUB_CACHE="$TMP/empty" "$RADDINO" embed --repo nobody/nothing --revision v3 "$IMG"
stderr_has "nobody/nothing is not in the Hugging Face cache" "missing named model explained"
stderr_has "'raddino model fetch --repo nobody/nothing --revision v3' downloads it" "missing named model: the fetch to run"
printf 'not a commit' >"$REPO1/refs/main"
expect 1 "garbage in refs/main" -- env HF_HUB_CACHE="$C1" "$RADDINO" model info
stderr_has "not a commit hash" "bad ref explained"

finish hub
