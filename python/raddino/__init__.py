"""raddino: RAD-DINO chest X-ray embeddings from Python, over libraddino.so (ctypes, numpy).

    import raddino
    enc = raddino.Encoder()                       # RAD-DINO from the Hugging Face cache
    cls = enc.embed(["a.png", "b.dcm"])           # float32 [2, 768]
    col = raddino.Collection("raddino.db")        # made by `raddino index`
    for id, score, path in col.search("a.png", k=5):
        print(id, score, path)
    vectors, ids = col.vectors(), col.ids()       # float32 [N, 768], int64 [N]

Pure Python: the numbers are computed by the same C library as the raddino command, so they are
the command's bit for bit. The library is found through $RADDINO_LIBRARY (a path), else a
libraddino.so.0 next to this package, else the system's loader (an installed libraddino).
Every failure raises raddino.Error with the library's one-line message.
"""

import ctypes
import ctypes.util
import json
import os
from collections import namedtuple

import numpy as np

__all__ = ["Encoder", "Collection", "Error", "Hit", "Clusters", "build_info", "library_path"]
__version__ = "0.1.0"

_MESSAGE_MAX = 512   # RADDINO_MESSAGE_MAX


class Error(Exception):
    """A libraddino failure: .code is the raddino_status_code, str() the one-line message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class _Status(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * _MESSAGE_MAX)]


def _candidates():
    env = os.environ.get("RADDINO_LIBRARY")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    out = [os.path.join(here, name) for name in ("libraddino.so.0", "libraddino.so")]
    out = [p for p in out if os.path.exists(p)]
    found = ctypes.util.find_library("raddino")
    out += [found] if found else []
    out.append("libraddino.so.0")
    return out


def _load():
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(str(e))
    raise ImportError("raddino: cannot load libraddino.so (set RADDINO_LIBRARY to its path): "
                      + "; ".join(errors))


_lib, _lib_path = _load()

_c_float_p = ctypes.POINTER(ctypes.c_float)
_c_int64_p = ctypes.POINTER(ctypes.c_int64)
_c_uint8_p = ctypes.POINTER(ctypes.c_uint8)
_c_int32_p = ctypes.POINTER(ctypes.c_int32)
_c_int_p = ctypes.POINTER(ctypes.c_int)


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_S = _Status
_vp = ctypes.c_void_p
_build_info_json = _fn("raddino_build_info_json", _S, ctypes.c_char_p, ctypes.c_size_t)
_free = _fn("raddino_free", None, _vp)
_encoder_open = _fn("raddino_encoder_open_simple", _S, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                    ctypes.POINTER(_vp))
_encoder_close = _fn("raddino_encoder_close", None, _vp)
_encoder_shape = _fn("raddino_encoder_shape", _S, _vp, _c_int_p, _c_int_p, _c_int_p, _c_int_p,
                     ctypes.POINTER(ctypes.c_char_p))
_embed_file = _fn("raddino_embed_file", _S, _vp, ctypes.c_char_p, _c_float_p, _c_float_p)
_embed_rgb = _fn("raddino_embed_rgb", _S, _vp, _c_uint8_p, ctypes.c_int, ctypes.c_int, _c_float_p,
                 _c_float_p)
_preprocess_file = _fn("raddino_preprocess_file", _S, _vp, ctypes.c_char_p, _c_uint8_p, _c_float_p)
_col_open = _fn("raddino_collection_open_simple", _S, ctypes.c_char_p, ctypes.POINTER(_vp))
_col_close = _fn("raddino_collection_close", None, _vp)
_col_shape = _fn("raddino_collection_shape", _S, _vp, _c_int_p, _c_int64_p)
_col_path = _fn("raddino_collection_path", _S, _vp, ctypes.c_int64, ctypes.c_char_p,
                ctypes.c_size_t, _c_int_p)
_col_vector = _fn("raddino_collection_get_vector", _S, _vp, ctypes.c_int64, _c_float_p, _c_int_p)
_col_find = _fn("raddino_collection_find", _S, _vp, ctypes.c_char_p, _c_int64_p, _c_int_p)
_col_check = _fn("raddino_collection_check_encoder", _S, _vp, _vp)
_col_stats = _fn("raddino_collection_stats_json", _S, _vp, ctypes.c_char_p, ctypes.c_size_t)
_col_read_all = _fn("raddino_collection_read_all", _S, _vp, ctypes.POINTER(_c_float_p),
                    ctypes.POINTER(_c_int64_p), ctypes.POINTER(ctypes.c_size_t))
_col_search = _fn("raddino_collection_search", _S, _vp, _c_float_p, ctypes.c_size_t, ctypes.c_int,
                  ctypes.c_float, _c_int64_p, ctypes.POINTER(ctypes.c_char_p), _c_float_p,
                  _c_int64_p)
_kmeans = _fn("raddino_kmeans_simple", _S, _c_float_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
              ctypes.c_uint64, ctypes.c_int, ctypes.c_size_t, ctypes.c_int, _c_float_p, _c_int32_p,
              _c_float_p, ctypes.POINTER(ctypes.c_double))


def _check(st):
    if st.code:
        raise Error(st.code, st.message.decode("utf-8", "replace"))


def _path_bytes(p):
    return os.fsencode(os.fspath(p))


def _ptr(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def library_path():
    """The libraddino file this module loaded."""
    return _lib_path


def build_info():
    """raddino --version --json's library part as a dict: version, git_commit, faiss, gdcm,
    openblas {config, parallel}, sqlite, libjpeg_turbo, libpng, cjson, curl, kernel."""
    buf = ctypes.create_string_buffer(8192)
    _check(_build_info_json(buf, len(buf)))
    return json.loads(buf.value.decode())


_PRECISIONS = {"fp32": 0, "bf16": 1}


def _is_pathlike(x):
    return isinstance(x, (str, bytes, os.PathLike))


def _as_rgb(a):
    """A uint8 image array as contiguous [H, W, 3]: grey [H, W] or [H, W, 1] is repeated into
    the three channels, [H, W, 4] loses its alpha (Pillow's convert("RGB") for L and RGBA)."""
    a = np.asarray(a)
    if a.dtype != np.uint8:
        raise Error(1, "image arrays must be uint8 (got %s)" % a.dtype)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    elif not (a.ndim == 3 and a.shape[2] == 3):
        raise Error(1, "image arrays must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] "
                       "(got shape %s)" % (a.shape,))
    return np.ascontiguousarray(a)


class _Closing:
    """`with` and garbage collection call the subclass's close()."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class Encoder(_Closing):
    """The RAD-DINO encoder (DINOv2 ViT) of a model folder.

    model: folder with config.json, preprocessor_config.json and the weights; None: $RADDINO_MODEL,
    else microsoft/rad-dino in the Hugging Face cache (`raddino model fetch` puts it there).
    precision: "fp32" (exact to the reference) or "bf16" (faster on CPUs with AVX512_BF16).
    threads: None for $RADDINO_THREADS, else all cores.
    One Encoder must not be used from two threads at once."""

    def __init__(self, model=None, precision="fp32", threads=None):
        if precision not in _PRECISIONS:
            raise Error(1, "precision must be fp32 or bf16 (got %r)" % (precision,))
        self._h = _vp()
        _check(_encoder_open(_path_bytes(model) if model is not None else None,
                             _PRECISIONS[precision], int(threads or 0), ctypes.byref(self._h)))
        hidden, tokens, height, width = (ctypes.c_int() for _ in range(4))
        kernel = ctypes.c_char_p()
        _check(_encoder_shape(self._h, ctypes.byref(hidden), ctypes.byref(tokens),
                              ctypes.byref(height), ctypes.byref(width), ctypes.byref(kernel)))
        self.hidden = hidden.value              # CLS length (768 for RAD-DINO)
        self.n_tokens = tokens.value            # tokens per image (1370 at 518x518)
        self.input_size = (height.value, width.value)
        self.kernel = kernel.value.decode()     # "avx512-fp32", "avx512-bf16", "openblas-fp32"

    def close(self):
        if getattr(self, "_h", None):
            _encoder_close(self._h)
            self._h = None

    def _handle(self):
        if not self._h:
            raise Error(1, "the encoder is closed")
        return self._h

    def _one(self, image, cls, tokens):
        t = _ptr(tokens, ctypes.c_float) if tokens is not None else None
        if _is_pathlike(image):
            _check(_embed_file(self._handle(), _path_bytes(image), _ptr(cls, ctypes.c_float), t))
        else:
            rgb = _as_rgb(image)
            _check(_embed_rgb(self._handle(), _ptr(rgb, ctypes.c_uint8), rgb.shape[1],
                              rgb.shape[0], _ptr(cls, ctypes.c_float), t))

    def embed(self, images):
        """CLS vectors of image files (paths) or uint8 pixel arrays ([H, W] grey, [H, W, 3] RGB),
        one or a list (or a [N, H, W, 3] array): float32 [N, hidden], rows in order."""
        if _is_pathlike(images) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)):
            images = [images]
        images = list(images)
        out = np.empty((len(images), self.hidden), dtype=np.float32)
        for i, image in enumerate(images):
            self._one(image, out[i], None)
        return out

    def tokens(self, image):
        """All output tokens of one image after the final LayerNorm, CLS first: float32
        [n_tokens, hidden] (Hugging Face's last_hidden_state)."""
        cls = np.empty(self.hidden, dtype=np.float32)
        tok = np.empty((self.n_tokens, self.hidden), dtype=np.float32)
        self._one(image, cls, tok)
        return tok

    def preprocess(self, path, crop=False):
        """The network input of an image file: float32 [3, H, W] (normalised, channel-major);
        with crop=True also the resized, cropped 8-bit RGB image [H, W, 3]."""
        h, w = self.input_size
        pixels = np.empty((3, h, w), dtype=np.float32)
        rgb = np.empty((h, w, 3), dtype=np.uint8) if crop else None
        _check(_preprocess_file(self._handle(), _path_bytes(path),
                                _ptr(rgb, ctypes.c_uint8) if crop else None,
                                _ptr(pixels, ctypes.c_float)))
        return (pixels, rgb) if crop else pixels


Hit = namedtuple("Hit", ["id", "score", "path"])
Clusters = namedtuple("Clusters", ["ids", "labels", "distances", "centroids", "objective"])


class Collection(_Closing):
    """A database made by `raddino index`, with its search index (DB.faiss beside it, loaded,
    refreshed or built as `raddino search` does). Opened read-only on one snapshot: rows a
    running `raddino index` commits later are not seen until it is opened again.

    model, precision, threads: the encoder for queries given as image files (opened on first
    use, and refused unless it is the collection's model)."""

    def __init__(self, db="raddino.db", model=None, precision="fp32", threads=None):
        self._h = _vp()
        self._encoder = None
        self._encoder_args = (model, precision, threads)
        _check(_col_open(_path_bytes(db), ctypes.byref(self._h)))
        dim, n = ctypes.c_int(), ctypes.c_int64()
        _check(_col_shape(self._h, ctypes.byref(dim), ctypes.byref(n)))
        self.dim = dim.value
        self.db = os.fspath(db)

    def close(self):
        if getattr(self, "_encoder", None):
            self._encoder.close()
            self._encoder = None
        if getattr(self, "_h", None):
            _col_close(self._h)
            self._h = None

    def __len__(self):
        n = ctypes.c_int64()
        _check(_col_shape(self._handle(), None, ctypes.byref(n)))
        return n.value

    def _handle(self):
        if not self._h:
            raise Error(1, "the collection is closed")
        return self._h

    def _read_all(self):
        v, i, n = _c_float_p(), _c_int64_p(), ctypes.c_size_t()
        _check(_col_read_all(self._handle(), ctypes.byref(v), ctypes.byref(i), ctypes.byref(n)))
        try:
            count = n.value
            vectors = np.empty((count, self.dim), dtype=np.float32)
            ids = np.empty(count, dtype=np.int64)
            if count:
                ctypes.memmove(vectors.ctypes.data, v, vectors.nbytes)
                ctypes.memmove(ids.ctypes.data, i, ids.nbytes)
        finally:
            _free(ctypes.cast(v, _vp))
            _free(ctypes.cast(i, _vp))
        return vectors, ids

    def vectors(self):
        """Every stored vector, in image id order (as `raddino export`): float32 [N, dim]."""
        return self._read_all()[0]

    def ids(self):
        """The image ids of vectors()' rows: int64 [N]."""
        return self._read_all()[1]

    def path(self, id):
        """The stored path of image id (None when there is no such image)."""
        buf = ctypes.create_string_buffer(4096)
        found = ctypes.c_int()
        _check(_col_path(self._handle(), int(id), buf, len(buf), ctypes.byref(found)))
        return os.fsdecode(buf.value) if found.value else None

    def find(self, path):
        """The id of a stored path (normalised as `raddino index` stores it), or None."""
        id, found = ctypes.c_int64(), ctypes.c_int()
        _check(_col_find(self._handle(), _path_bytes(path), ctypes.byref(id), ctypes.byref(found)))
        return id.value if found.value else None

    def encoder(self):
        """The query encoder (checked against the collection's model)."""
        if self._encoder is None:
            enc = Encoder(*self._encoder_args)
            try:
                _check(_col_check(self._handle(), enc._handle()))
            except Error:
                enc.close()
                raise
            self._encoder = enc
        return self._encoder

    def _query_vector(self, query):
        if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
            v = np.empty(self.dim, dtype=np.float32)   # as raddino search --id
            found = ctypes.c_int()
            _check(_col_vector(self._handle(), int(query), _ptr(v, ctypes.c_float),
                               ctypes.byref(found)))
            if not found.value:
                raise Error(8, "%s: image %d has no vector in the collection" % (self.db, query))
            return v
        if _is_pathlike(query):
            return self.encoder().embed(query)[0]
        v = np.asarray(query, dtype=np.float32)
        if v.shape != (self.dim,):
            raise Error(1, "a query vector must have shape (%d,) (got %s)" % (self.dim, v.shape))
        return v

    def search(self, query, k=10, min_score=None):
        """The k stored images most similar to query (cosine of CLS vectors), best first, as
        Hit(id, score, path) tuples. query: an image file path (embedded with the collection's
        model), a stored image id (int), or a vector of length dim. A list of queries (or a
        [M, dim] array) gives a list of result lists."""
        many = isinstance(query, (list, tuple)) or (isinstance(query, np.ndarray) and
                                                    query.ndim == 2)
        queries = list(query) if many else [query]
        q = np.ascontiguousarray(np.stack([self._query_vector(x) for x in queries]),
                                 dtype=np.float32)
        k = int(k)
        if k <= 0:
            raise Error(1, "k must be at least 1 (got %d)" % k)
        scores = np.empty((len(queries), k), dtype=np.float32)
        ids = np.empty((len(queries), k), dtype=np.int64)
        _check(_col_search(self._handle(), _ptr(q, ctypes.c_float), len(queries), k,
                           -2.0 if min_score is None else float(min_score), None, None,
                           _ptr(scores, ctypes.c_float), _ptr(ids, ctypes.c_int64)))
        rows = [[Hit(int(i), float(s), self.path(i)) for s, i in zip(srow, irow) if i >= 0]
                for srow, irow in zip(scores, ids)]
        return rows if many else rows[0]

    def cluster(self, k, seed=1234, iterations=0, sample=0, threads=None):
        """Spherical k-means of the stored vectors, as `raddino cluster -k K` computes it (same
        seed, same clusters), but not stored in the database: Clusters(ids, labels [N] int32,
        distances [N] (1 - cosine to the centroid), centroids [k, dim], objective)."""
        vectors, ids = self._read_all()
        n = len(ids)
        centroids = np.empty((int(k), self.dim), dtype=np.float32)
        labels = np.empty(n, dtype=np.int32)
        distances = np.empty(n, dtype=np.float32)
        objective = ctypes.c_double()
        _check(_kmeans(_ptr(vectors, ctypes.c_float), n, self.dim, int(k), int(seed),
                       int(iterations), int(sample), int(threads or 0),
                       _ptr(centroids, ctypes.c_float), _ptr(labels, ctypes.c_int32),
                       _ptr(distances, ctypes.c_float), ctypes.byref(objective)))
        return Clusters(ids, labels, distances, centroids, objective.value)

    def stats(self):
        """`raddino stats --json` as a dict: images, ok, failed, vectors, dim, models, dicom,
        modalities, failure_reasons, last_run..."""
        buf = ctypes.create_string_buffer(1 << 20)
        _check(_col_stats(self._handle(), buf, len(buf)))
        return json.loads(buf.value.decode())
