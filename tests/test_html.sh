#!/bin/sh
# test_html.sh RADDINO DATA — the --html reports of search, cluster/clusters, dedup and eval,
# with the tiny model on test images, a DICOM file and a file whose name holds HTML's special
# characters (a<b>&"c'.png). Each page is parsed with Python's html.parser: elements balanced
# inside <html><body>, every <img> a data: URI whose base64 decodes to a JPEG or PNG, the
# expected number of images, sections and map points, every expected image present (by its
# alt text, unescaped by the parser), and the hostile name never written raw.
set -u
RADDINO=$1
DATA=$2
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"

# page WHAT FILE CHECK...: parses FILE; CHECKs are images=N, sections=N, points=N (SVG
# circles), lines=N (SVG polylines), tables=N, missing=N (placeholders), alt=PATH (an image of that path, repeatable),
# text=STRING (in the page's text, unescaped), svg=N (inline SVGs).
page() {
    what=$1; shift
    $PY - "$HOSTILE_NAME" "$@" <<'PYEOF' && ok || fail "$what"
import base64, sys
from html.parser import HTMLParser
hostile, path, checks = sys.argv[1], sys.argv[2], sys.argv[3:]
raw = open(path, encoding="utf-8").read()
VOID = {"meta", "img", "br", "hr", "link", "input"}    # SVG elements are closed or "/>"
class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.count, self.alts, self.text, self.errors = [], {}, [], [], []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.count[tag] = self.count.get(tag, 0) + 1
        if tag == "div" and "missing" in (a.get("class") or "").split():
            self.count["missing"] = self.count.get("missing", 0) + 1
        if tag == "img":
            src = a.get("src") or ""
            head, _, data = src.partition(",")
            if head not in ("data:image/jpeg;base64", "data:image/png;base64"):
                self.errors.append("img src is not a data URI: " + src[:40])
            else:
                b = base64.b64decode(data, validate=True)
                if not (b.startswith(b"\xff\xd8\xff") or b.startswith(b"\x89PNG\r\n\x1a\n")):
                    self.errors.append("img data is neither JPEG nor PNG")
            self.alts.append(a.get("alt"))
        if tag not in VOID:
            self.stack.append(tag)
    def handle_startendtag(self, tag, attrs):
        self.count[tag] = self.count.get(tag, 0) + 1
    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("unbalanced </%s> (open: %s)" % (tag, self.stack[-3:]))
        else:
            self.stack.pop()
    def handle_data(self, d):
        self.text.append(d)
p = Page()
p.feed(raw)
p.close()
errors = p.errors
if p.stack:
    errors.append("unclosed: %s" % p.stack)
if not raw.startswith("<!DOCTYPE html>") or p.count.get("html") != 1 or p.count.get("body") != 1:
    errors.append("not one html/body")
if hostile in raw:
    errors.append("hostile name written unescaped")
text = "".join(p.text)
for c in checks:
    k, v = c.split("=", 1)
    if k == "alt":
        if v not in p.alts:
            errors.append("no image of %s" % v)
    elif k == "text":
        if v not in text:
            errors.append("text lacks %r" % v)
    else:
        name = {"images": "img", "sections": "section", "points": "circle", "svg": "svg",
                "missing": "missing", "lines": "polyline", "tables": "table"}[k]
        if p.count.get(name, 0) != int(v):
            errors.append("%s: %d, expected %s" % (k, p.count.get(name, 0), v))
if errors:
    print("\n".join(errors))
    sys.exit(1)
PYEOF
}

unset RADDINO_MODEL RADDINO_DB
export RADDINO_MODEL="$DATA/models/tiny"
IMGS="$TMP/imgs"
mkdir -p "$IMGS"
HOSTILE_NAME='a<b>&"c'"'"'.png'
for f in xray_nih_00000075_000.png xray_mhh_0a7faa2a.png gray8_300x400.png rgb8_640x480.jpg \
         palette8_400x320.png; do
    cp "$DATA/images/$f" "$IMGS/"
done
cp "$DATA/images/gray8_600x700.png" "$IMGS/$HOSTILE_NAME"
cp "$DATA/images/gray8_300x400.png" "$IMGS/copy_of_gray8.png"     # an exact duplicate
cp "$DATA/dicom/dx_image.dcm" "$IMGS/"
N=8
DB="$TMP/c.db"
expect 0 "index" -- "$RADDINO" index --db "$DB" --quiet "$IMGS"
HOSTILE="$IMGS/$HOSTILE_NAME"

# ---- search ----
expect 0 "search --html" -- "$RADDINO" search --db "$DB" -k 3 --html "$TMP/s.html" \
    "$HOSTILE" --path "$IMGS/dx_image.dcm" --id 1
page "search page" "$TMP/s.html" sections=3 images=12 missing=0 alt="$HOSTILE" \
    alt="$IMGS/dx_image.dcm" text="#3" text="$HOSTILE"
[ -s "$TMP/out" ] && ok || fail "search --html still prints the results"
ls "$TMP"/s.html.tmp.* >/dev/null 2>&1 && fail "temporary file left" || ok
# An image gone since indexing: a placeholder, not a failure.
cp "$IMGS/rgb8_640x480.jpg" "$TMP/gone.jpg"
expect 0 "index gone.jpg" -- "$RADDINO" index --db "$DB" --quiet "$TMP/gone.jpg"
rm "$TMP/gone.jpg"
expect 0 "search with an undecodable hit" -- "$RADDINO" search --db "$DB" -k 9 \
    --html "$TMP/s2.html" --path "$IMGS/rgb8_640x480.jpg"
page "placeholder for a missing image" "$TMP/s2.html" sections=1 images=9 missing=1
expect 1 "unwritable --html" -- "$RADDINO" search --db "$DB" -k 3 --html "$TMP/no/dir/x.html" --id 1
grep -q "raddino: .*no/dir/x.html" "$TMP/err" && ok || { fail "error names the page"; cat "$TMP/err"; }
expect 0 "remove gone.jpg" -- "$RADDINO" index --db "$DB" --quiet --prune "$TMP/gone.jpg"

# A file name that is not UTF-8 (byte 0xFF): the page stays valid UTF-8 (U+FFFD instead).
mkdir -p "$TMP/latin"
BAD="$TMP/latin/bad$(printf '\377')name.png"
cp "$DATA/images/gray8_14x14.png" "$BAD"
expect 0 "index a non-UTF-8 name" -- "$RADDINO" index --db "$TMP/latin.db" --quiet "$TMP/latin"
expect 0 "search --html, non-UTF-8 name" -- "$RADDINO" search --db "$TMP/latin.db" -k 1 \
    --html "$TMP/latin.html" --id 1
page "non-UTF-8 name replaced" "$TMP/latin.html" sections=1 images=2 \
    alt="$TMP/latin/bad$(printf '\357\277\275')name.png"

# ---- dedup ----
# The expected groups are dedup's own --json; a low threshold puts the hostile name in one.
expect 0 "dedup --json" -- "$RADDINO" dedup --db "$DB" --threshold 0.5 --json
cp "$TMP/out" "$TMP/groups.json"
expect 0 "dedup --html" -- "$RADDINO" dedup --db "$DB" --threshold 0.5 --html "$TMP/d.html"
set -- $($PY -c '
import json, sys
g = [json.loads(l) for l in open(sys.argv[1])]
print(len(g), sum(len(x["ids"]) for x in g), sum(x["kind"] == "exact" for x in g))
' "$TMP/groups.json")
[ "$3" -ge 1 ] && ok || fail "dedup finds the exact copy"
alts=$($PY -c '
import json, sys
for l in open(sys.argv[1]):
    for p in json.loads(l)["paths"]: print("alt=" + p)
' "$TMP/groups.json")
IFS='
'
page "dedup page" "$TMP/d.html" sections=$1 images=$2 missing=0 alt="$HOSTILE" \
    alt="$IMGS/copy_of_gray8.png" text="identical files" $alts
unset IFS

# ---- cluster / clusters ----
# k = 3 sections + the map; fewer images than the 12 exemplars shown, so every image appears,
# and the map has one point per image. clusters --html shows the stored run again.
expect 0 "cluster --html" -- "$RADDINO" cluster --db "$DB" --clusters 3 --html "$TMP/c.html"
expect 0 "clusters --csv" -- "$RADDINO" clusters --db "$DB" --csv
alts=$($PY -c '
import csv, sys
for r in csv.DictReader(open(sys.argv[1])): print("alt=" + r["path"])
' "$TMP/out")
[ "$(echo "$alts" | wc -l)" -eq "$N" ] && ok || fail "clusters --csv lists every image"
IFS='
'
page "cluster page" "$TMP/c.html" sections=4 svg=1 points=$N images=$N missing=0 \
    text="Cluster 2" text="Map of the collection" $alts
unset IFS
expect 0 "clusters --html" -- "$RADDINO" clusters --db "$DB" --html "$TMP/c2.html"
page "clusters page" "$TMP/c2.html" sections=4 svg=1 points=$N images=$N alt="$HOSTILE"
cmp -s "$TMP/c.html" "$TMP/c2.html" && ok || fail "the same run gives the same page"
# Every point's tooltip names its image (the hostile one escaped, unescaped by the parser).
$PY - "$TMP/c.html" "$HOSTILE" <<'PYEOF' && ok || fail "map tooltips"
import sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__(); self.inside = False; self.titles = []
    def handle_starttag(self, t, a):
        if t == "title" and self.in_svg: self.inside = True; self.titles.append("")
        if t == "svg": self.in_svg = True
    def handle_endtag(self, t):
        if t == "title": self.inside = False
    def handle_data(self, d):
        if self.inside: self.titles[-1] += d
    in_svg = False
p = P(); p.feed(open(sys.argv[1]).read())
assert any(t.startswith(sys.argv[2] + " (cluster ") for t in p.titles), p.titles
PYEOF

# ---- eval ----
# Two labels with queries (one with HTML in its name) and one skipped (a single image): a
# table, one line per label plus overall, one section of examples per label with queries.
printf 'path,label\n%s\n%s\n%s\n%s\n%s\n%s\n' xray_nih_00000075_000.png,chest \
    xray_mhh_0a7faa2a.png,chest dx_image.dcm,chest 'gray8_300x400.png,flat <b>&' \
    '"a<b>&""c'"'"'.png","flat <b>&"' rgb8_640x480.jpg,colour >"$TMP/labels.csv"
expect 0 "eval --html" -- "$RADDINO" eval --db "$DB" --labels "$TMP/labels.csv" --html "$TMP/e.html"
page "eval page" "$TMP/e.html" sections=3 svg=1 lines=3 tables=1 images=5 missing=0 \
    alt="$HOSTILE" alt="$IMGS/dx_image.dcm" alt="$IMGS/gray8_300x400.png" text="flat <b>&" \
    text="P@10" text="overall"
grep -qF 'flat <b>' "$TMP/e.html" && fail "a label written unescaped" || ok

finish html
