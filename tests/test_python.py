"""test_python.py — the Python bindings (python/raddino) against the installed libraddino and the
installed raddino command: every result equal to the command's, bit for bit (embed .npy, tokens,
preprocess tensors, export, search, cluster, stats, --version --json), errors raised as
raddino.Error with the library's message, and the README's recipes (the Python session, and
reading the database and DB.faiss with sqlite3 + faiss, no binding) run as written.

Run by tests/test_install.sh with /usr/bin/python3 and:
  RADDINO_BIN       the installed raddino
  RADDINO_LIBRARY   the installed libraddino.so.0
  RADDINO_TEST_DATA tests/data
  PYTHONPATH        the source tree's python/
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import raddino

BIN = os.environ["RADDINO_BIN"]
DATA = os.environ["RADDINO_TEST_DATA"]
MODEL = os.path.join(DATA, "models", "tiny")
IMAGES = ["xray_mhh_0a7faa2a.png", "xray_nih_00000075_000.png", "gray8_300x400.png",
          "rgb8_640x480.jpg", "gray8_518x518.png", "palette8_400x320.png",
          "gray16_900x1024.png"]


def run(*args, **kw):
    return subprocess.run([BIN] + list(args), check=True, capture_output=True, text=True, **kw)


def bits(a):
    """The array's bytes as unsigned integers: equality is bit for bit (NaN, -0.0 included)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a.view(np.uint32)


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="raddino-py-")
        cls.imgdir = os.path.join(cls.tmp, "imgs")
        os.mkdir(cls.imgdir)
        for f in IMAGES:
            shutil.copy(os.path.join(DATA, "images", f), cls.imgdir)
        # A damaged PNG (signature, then garbage): recorded as failed by index.
        with open(os.path.join(cls.imgdir, "notes.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
        cls.paths = [os.path.join(cls.imgdir, f) for f in IMAGES]
        cls.db = os.path.join(cls.tmp, "c.db")
        subprocess.run([BIN, "index", "--db", cls.db, "--quiet", cls.imgdir],
                       capture_output=True, text=True)   # exit 1: one file failed

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)


class TestEncoder(Base):
    def test_embed_paths_equal_cli_npy(self):
        out = os.path.join(self.tmp, "cls.npy")
        run("embed", "--npy", out, *self.paths)
        want = np.load(out)
        with raddino.Encoder(MODEL) as enc:
            got = enc.embed(self.paths)
            self.assertEqual(got.shape, (len(self.paths), enc.hidden))
            self.assertEqual(got.dtype, np.float32)
            self.assertTrue(np.array_equal(bits(got), bits(want)))
            one = enc.embed(self.paths[1])       # a single path: one row
            self.assertTrue(np.array_equal(bits(one[0]), bits(want[1])))

    def test_embed_arrays_equal_files(self):
        # uint8 arrays against the same pixels written as PNM (decoded by the library's loader).
        rng = np.random.default_rng(7)
        rgb = rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)
        grey = rng.integers(0, 256, (240, 320), dtype=np.uint8)
        ppm = os.path.join(self.tmp, "a.ppm")
        pgm = os.path.join(self.tmp, "b.pgm")
        with open(ppm, "wb") as f:
            f.write(b"P6\n260 300\n255\n" + rgb.tobytes())
        with open(pgm, "wb") as f:
            f.write(b"P5\n320 240\n255\n" + grey.tobytes())
        with raddino.Encoder(MODEL) as enc:
            from_files = enc.embed([ppm, pgm])
            from_arrays = enc.embed([rgb, grey])
            self.assertTrue(np.array_equal(bits(from_files), bits(from_arrays)))
            self.assertTrue(np.array_equal(bits(enc.embed(rgb)), bits(from_files[:1])))
            batch = enc.embed(np.stack([rgb, rgb]))
            self.assertEqual(batch.shape, (2, enc.hidden))
            self.assertTrue(np.array_equal(bits(batch[1]), bits(from_files[0])))
            with self.assertRaises(raddino.Error):
                enc.embed(rgb.astype(np.float32))
            with self.assertRaises(raddino.Error):
                enc.embed(np.zeros((4, 4, 2), np.uint8))

    def test_tokens_and_preprocess_equal_cli(self):
        tokdir = os.path.join(self.tmp, "tok")
        run("embed", "--tokens", tokdir, self.paths[0])
        want = np.load(os.path.join(tokdir, os.path.splitext(IMAGES[0])[0] + ".npy"))
        pix = os.path.join(self.tmp, "pix.npy")
        run("preprocess", self.paths[3], "--out", os.path.join(self.tmp, "crop.png"),
            "--pixels", pix)
        with raddino.Encoder(MODEL) as enc:
            tok = enc.tokens(self.paths[0])
            self.assertEqual(tok.shape, (1370, enc.hidden))
            self.assertTrue(np.array_equal(bits(tok), bits(want)))
            pixels, crop = enc.preprocess(self.paths[3], crop=True)
            self.assertEqual(pixels.shape, (3, 518, 518))
            self.assertEqual(crop.shape, (518, 518, 3))
            self.assertTrue(np.array_equal(bits(pixels), bits(np.load(pix))))
            self.assertTrue(np.array_equal(bits(enc.preprocess(self.paths[3])), bits(pixels)))
            self.assertIn(enc.kernel, ("avx512-fp32", "openblas-fp32"))

    def test_errors_carry_the_library_message(self):
        missing = os.path.join(self.tmp, "missing")
        with self.assertRaises(raddino.Error) as e:
            raddino.Encoder(missing)
        self.assertIn(missing, str(e.exception))
        self.assertNotEqual(e.exception.code, 0)
        bad = os.path.join(self.imgdir, "notes.png")
        r = subprocess.run([BIN, "embed", "--model", MODEL, bad], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        with raddino.Encoder(MODEL) as enc:
            with self.assertRaises(raddino.Error) as e:
                enc.embed([self.paths[0], bad])
        self.assertIn("raddino: " + str(e.exception), r.stderr)
        with self.assertRaises(raddino.Error):
            raddino.Encoder(MODEL, precision="fp16")

    def test_build_info_equals_version_json(self):
        cli = json.loads(run("--version", "--json").stdout)
        cli.pop("libmicrohttpd")
        info = raddino.build_info()
        # The OpenBLAS in a Python process is whichever was loaded first: NumPy's (the system's
        # selection) shares the soname with ours, so only its presence is compared.
        for d in (info, cli):
            self.assertIn(d.pop("openblas")["parallel"], ("openmp", "pthread", "serial"))
        self.assertEqual(info, cli)
        self.assertEqual(cli["version"], raddino.__version__)


class TestCollection(Base):
    def test_vectors_and_ids_equal_export(self):
        npy, paths = os.path.join(self.tmp, "x.npy"), os.path.join(self.tmp, "x.csv")
        run("export", "--db", self.db, "--npy", npy, "--csv", paths)
        with raddino.Collection(self.db) as col:
            v, ids = col.vectors(), col.ids()
            self.assertEqual(len(col), len(IMAGES))
            self.assertTrue(np.array_equal(bits(v), bits(np.load(npy))))
            with open(paths, newline="") as f:
                rows = list(csv.reader(f))[1:]
            self.assertEqual(ids.tolist(), [int(r[0]) for r in rows])
            self.assertEqual([col.path(i) for i in ids], [r[1] for r in rows])
            self.assertEqual(col.find(rows[2][1]), int(rows[2][0]))
            self.assertIsNone(col.find(os.path.join(self.tmp, "nowhere.png")))
            self.assertIsNone(col.path(10 ** 9))

    def cli_search(self, *args):
        out = run("search", "--db", self.db, "--json", *args).stdout
        rows = [json.loads(line) for line in out.splitlines()]
        return [(r["id"], "%.6f" % r["score"], r["path"]) for r in rows]

    @staticmethod
    def fmt(hits):
        return [(h.id, "%.6f" % h.score, h.path) for h in hits]

    def test_search_equals_cli(self):
        with raddino.Collection(self.db, model=MODEL) as col:
            for k in (1, 4, 20):
                self.assertEqual(self.fmt(col.search(self.paths[1], k=k)),
                                 self.cli_search("--model", MODEL, "-k", str(k), self.paths[1]))
            ids = col.ids()
            by_id = col.search(int(ids[2]), k=5)
            self.assertEqual(self.fmt(by_id), self.cli_search("-k", "5", "--id", str(ids[2])))
            self.assertEqual(by_id[0].id, ids[2])
            by_vector = col.search(col.vectors()[2], k=5)
            self.assertEqual(by_vector, by_id)
            many = col.search([int(ids[0]), self.paths[4]], k=3)
            self.assertEqual(len(many), 2)
            self.assertEqual(many[0], col.search(int(ids[0]), k=3))
            with self.assertRaises(raddino.Error) as e:
                col.search(10 ** 9)
            self.assertIn("no vector", str(e.exception))

    def test_search_refuses_another_model(self):
        with raddino.Collection(self.db, model=os.path.join(DATA, "models", "tiny224")) as col:
            with self.assertRaises(raddino.Error) as e:
                col.search(self.paths[0])
            self.assertIn("another model", str(e.exception))

    def test_cluster_equals_cli(self):
        out = run("cluster", "--db", self.db, "--clusters", "2", "--csv").stdout
        rows = list(csv.reader(out.splitlines()))[1:]
        with raddino.Collection(self.db) as col:
            c = col.cluster(2)
        got = sorted((int(i), int(l), "%.6f" % d) for i, l, d in zip(c.ids, c.labels, c.distances))
        want = sorted((int(r[0]), int(r[2]), r[3]) for r in rows)
        self.assertEqual(got, want)
        self.assertEqual(c.centroids.shape, (2, col.dim))

    def test_stats_equal_cli(self):
        cli = json.loads(run("stats", "--db", self.db, "--json").stdout)
        with raddino.Collection(self.db) as col:
            got = col.stats()
        for key in ("schema", "generation", "images", "ok", "failed", "vectors", "dim", "models",
                    "dicom", "modalities", "failure_reasons"):
            self.assertEqual(got[key], cli[key], key)
        self.assertEqual(got["failed"], 1)
        for key in ("id", "command", "added", "failed"):
            self.assertEqual(got["last_run"][key], cli["last_run"][key], key)

    def test_missing_database(self):
        missing = os.path.join(self.tmp, "missing.db")
        with self.assertRaises(raddino.Error) as e:
            raddino.Collection(missing)
        self.assertIn(missing, str(e.exception))


def readme_blocks(marker):
    """The indented code block of README.md that follows the line holding `marker`."""
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
    with open(readme) as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line) + 1
    while not lines[start].startswith("    "):
        start += 1
    block = []
    for line in lines[start:]:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block).strip("\n") + "\n"


class TestReadme(Base):
    def test_python_session(self):
        # Runs the README's session in a folder of its own, as a user would.
        work = os.path.join(self.tmp, "session")
        os.makedirs(work)
        shutil.copytree(self.imgdir, os.path.join(work, "xrays"))
        os.remove(os.path.join(work, "xrays", "notes.png"))
        code = readme_blocks("<!-- python-session -->")
        env = dict(os.environ, RADDINO_MODEL=MODEL,
                   PATH=os.path.dirname(BIN) + os.pathsep + os.environ.get("PATH", ""))
        r = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(7, 64)", r.stdout)

    def test_plain_python_recipe(self):
        try:
            import faiss  # noqa: F401
        except ImportError:
            self.skipTest("python3-faiss is not installed")
        work = os.path.join(self.tmp, "plain")
        os.makedirs(work)
        shutil.copy(self.db, os.path.join(work, "raddino.db"))
        with raddino.Collection(os.path.join(work, "raddino.db")) as col:   # writes DB.faiss
            want = col.search(int(col.ids()[0]), k=3)
        code = readme_blocks("<!-- plain-python -->")
        code += "\nimport json\nprint(json.dumps([hits[0].tolist(), scores[0].tolist()]))\n"
        r = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        ids, scores = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual(ids, [h.id for h in want])
        for s, h in zip(scores, want):
            self.assertAlmostEqual(s, h.score, places=5)


if __name__ == "__main__":
    unittest.main(verbosity=1)
