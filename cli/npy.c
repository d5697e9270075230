/* npy.c — NumPy .npy format version 1.0 for float32 arrays.
 *
 * Reading also takes '<f2' and '<f8' arrays (npy_read_float), converted to float32: vectors
 * computed elsewhere come as float16 or float64 too.
 *
 * Layout: "\x93NUMPY", major 1, minor 0, a little-endian uint16 header length, then an ASCII
 * Python dict literal padded with spaces and ended by '\n' so that the data starts on a
 * 64-byte boundary, then the raw little-endian float32 data in C order. */
#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAX_DIMS 8

static raddino_status npy_error(int code, const char *path, const char *reason)
{
    return raddino_status_error(code, "%s: %s", path, reason);
}

static raddino_status npy_ok(void)
{
    return raddino_status_ok();
}

/* The header dict, padded to a multiple of 64 bytes including the 10-byte preamble. */
static size_t npy_header(char *out, size_t cap, int n_dims, const int64_t *shape)
{
    char dims[256] = "";
    size_t used = 0;
    for (int i = 0; i < n_dims; i++)
        used += (size_t)snprintf(dims + used, sizeof dims - used, "%lld,%s",
                                 (long long)shape[i], i + 1 < n_dims ? " " : "");
    if (n_dims > 1) dims[used - 1] = 0;   /* (N,) needs the comma, (N, D) does not */
    int n = snprintf(out, cap, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }",
                     dims);
    size_t len = (size_t)n;
    size_t total = (10 + len + 1 + 63) / 64 * 64;
    while (10 + len + 1 < total) out[len++] = ' ';
    out[len++] = '\n';
    return len;
}

raddino_status npy_writer_open(npy_writer *w, const char *path, int n_dims,
                               const int64_t *shape)
{
    memset(w, 0, sizeof *w);
    w->path = path;
    if (n_dims < 1 || n_dims > NPY_MAX_DIMS)
        return npy_error(RADDINO_ERR_ARGUMENT, path, "bad number of dimensions");
    uint64_t count = 1;
    for (int i = 0; i < n_dims; i++) {
        if (shape[i] < 0) return npy_error(RADDINO_ERR_ARGUMENT, path, "negative dimension");
        count *= (uint64_t)shape[i];
    }
    char header[512];
    size_t header_len = npy_header(header, sizeof header, n_dims, shape);
    if (snprintf(w->tmp, sizeof w->tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof w->tmp)
        return npy_error(RADDINO_ERR_ARGUMENT, path, "path too long");
    w->f = fopen(w->tmp, "wb");
    if (!w->f) return npy_error(RADDINO_ERR_IO, path, strerror(errno));
    w->expected = count;
    unsigned char preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                  (unsigned char)(header_len & 0xff),
                                  (unsigned char)(header_len >> 8)};
    if (fwrite(preamble, 1, 10, w->f) != 10 || fwrite(header, 1, header_len, w->f) != header_len) {
        int saved = errno;
        npy_writer_abort(w);
        return npy_error(RADDINO_ERR_IO, path, strerror(saved));
    }
    return npy_ok();
}

raddino_status npy_writer_write(npy_writer *w, const float *data, size_t count)
{
    if (!w->f) return npy_error(RADDINO_ERR_ARGUMENT, w->path, "writer not open");
    if (count > w->expected - w->written)
        return npy_error(RADDINO_ERR_ARGUMENT, w->path, "more values than the shape holds");
    /* Data is written as stored: every platform we build for is little-endian. */
    if (count && fwrite(data, sizeof(float), count, w->f) != count)
        return npy_error(RADDINO_ERR_IO, w->path, strerror(errno));
    w->written += count;
    return npy_ok();
}

void npy_writer_abort(npy_writer *w)
{
    if (!w->f) return;
    fclose(w->f);
    w->f = NULL;
    unlink(w->tmp);
}

raddino_status npy_writer_finish(npy_writer *w)
{
    if (!w->f) return npy_error(RADDINO_ERR_ARGUMENT, w->path, "writer not open");
    if (w->written != w->expected) {
        npy_writer_abort(w);
        return npy_error(RADDINO_ERR_ARGUMENT, w->path, "fewer values than the shape holds");
    }
    int failed = fclose(w->f) != 0;
    int saved = errno;
    w->f = NULL;
    if (failed || rename(w->tmp, w->path) != 0) {
        if (!failed) saved = errno;
        unlink(w->tmp);
        return npy_error(RADDINO_ERR_IO, w->path, strerror(saved));
    }
    return npy_ok();
}

raddino_status npy_write_f32(const char *path, const float *data, int n_dims,
                             const int64_t *shape)
{
    npy_writer w;
    raddino_status st = npy_writer_open(&w, path, n_dims, shape);
    if (st.code) return st;
    st = npy_writer_write(&w, data, (size_t)w.expected);
    if (st.code) {
        npy_writer_abort(&w);
        return st;
    }
    return npy_writer_finish(&w);
}

/* Parses "(a, b, c)" after 'shape': in the header dict. */
static bool parse_shape(const char *header, int *n_dims, int64_t *shape)
{
    const char *p = strstr(header, "'shape':");
    if (!p) return false;
    p = strchr(p, '(');
    if (!p) return false;
    p++;
    *n_dims = 0;
    for (;;) {
        while (*p == ' ') p++;
        if (*p == ')') return true;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || *n_dims == NPY_MAX_DIMS) return false;
        shape[(*n_dims)++] = v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p != ')') return false;
    }
}

/* Data is read in pieces of at most this many bytes, the buffer growing as they arrive: a header
 * that claims more values than the file holds costs no more memory than the file itself. */
#define NPY_READ_CHUNK ((size_t)64 << 20)

static raddino_status read_data(FILE *f, const char *name, uint64_t count, size_t esize,
                                void **out)
{
    if (count > SIZE_MAX / esize)
        return npy_error(RADDINO_ERR_TOO_LARGE, name, "array too large");
    size_t want = (size_t)count * esize, got = 0;
    size_t cap = want < NPY_READ_CHUNK ? want : NPY_READ_CHUNK;
    uint8_t *buf = malloc(cap ? cap : 1);
    while (buf && got < want) {
        if (got == cap) {
            size_t bigger = cap > want - cap ? want : cap * 2;
            uint8_t *grown = realloc(buf, bigger);
            if (!grown) break;
            buf = grown;
            cap = bigger;
        }
        size_t n = fread(buf + got, 1, cap - got, f);
        got += n;
        if (n == 0) {
            free(buf);
            return npy_error(RADDINO_ERR_FORMAT, name,
                             ferror(f) ? strerror(errno) : "truncated data (fewer values than "
                                                           "the shape says)");
        }
    }
    if (!buf || got < want) {
        free(buf);
        return npy_error(RADDINO_ERR_NOMEM, name, "out of memory");
    }
    *out = buf;
    return npy_ok();
}

/* IEEE 754 binary16 to binary32, exactly (every half value is a float value). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);          /* inf, NaN */
    } else if (exp) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);  /* normal: rebias 15 -> 127 */
    } else if (mant) {
        int e = -1;                                         /* subnormal: normalise */
        do {
            e++;
            mant <<= 1;
        } while (!(mant & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ff) << 13);
    } else {
        bits = sign;
    }
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* The element size of a '<f2', '<f4' or '<f8' descr; 0 for anything else. */
static size_t float_descr(const char *header)
{
    if (strstr(header, "'descr': '<f4'")) return 4;
    if (strstr(header, "'descr': '<f2'")) return 2;
    if (strstr(header, "'descr': '<f8'")) return 8;
    return 0;
}

/* Converts count values of esize bytes (2 or 8) to float32 in a new buffer. */
static raddino_status to_float(const char *name, void *raw, uint64_t count, size_t esize,
                               float **out)
{
    if (esize == 4) {
        *out = raw;
        return npy_ok();
    }
    float *v = malloc(count ? (size_t)count * sizeof *v : 1);
    if (!v) {
        free(raw);
        return npy_error(RADDINO_ERR_NOMEM, name, "out of memory");
    }
    const uint8_t *b = raw;
    for (uint64_t i = 0; i < count; i++) {
        if (esize == 2) {
            v[i] = half_to_float((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
        } else {
            double d;
            memcpy(&d, b + 8 * i, sizeof d);   /* little-endian, as every platform we build for */
            v[i] = (float)d;
        }
    }
    free(raw);
    *out = v;
    return npy_ok();
}

/* The header's element count, or an error when the product of the shape overflows. */
static raddino_status element_count(const char *name, int n_dims, const int64_t *shape,
                                    uint64_t *count)
{
    *count = 1;
    for (int i = 0; i < n_dims; i++)
        if (__builtin_mul_overflow(*count, (uint64_t)shape[i], count) ||
            *count > UINT64_MAX / sizeof(float))
            return npy_error(RADDINO_ERR_TOO_LARGE, name, "array too large");
    return npy_ok();
}

static raddino_status read_stream(FILE *f, const char *name, bool any_float, float **data,
                                  int *n_dims, int64_t *shape)
{
    unsigned char preamble[10];
    char header[65536];
    if (fread(preamble, 1, 10, f) != 10 || memcmp(preamble, NPY_MAGIC, 6) != 0 ||
        preamble[6] != 1)
        return npy_error(RADDINO_ERR_FORMAT, name, "not a .npy version 1 file");
    size_t header_len = preamble[8] | (size_t)preamble[9] << 8;
    if (fread(header, 1, header_len, f) != header_len)
        return npy_error(RADDINO_ERR_FORMAT, name, "truncated header");
    header[header_len] = 0;
    size_t esize = float_descr(header);
    if (!any_float && esize != 4) esize = 0;
    if (!esize || !strstr(header, "'fortran_order': False") ||
        !parse_shape(header, n_dims, shape))
        return npy_error(RADDINO_ERR_UNSUPPORTED, name,
                         any_float ? "only C-order '<f2', '<f4' or '<f8' arrays are read"
                                   : "only C-order '<f4' arrays are read");
    uint64_t count;
    raddino_status st = element_count(name, *n_dims, shape, &count);
    if (st.code) return st;
    void *raw = NULL;
    st = read_data(f, name, count, esize, &raw);
    if (st.code) return st;
    return to_float(name, raw, count, esize, data);
}

raddino_status npy_read_f32(const char *path, float **data, int *n_dims, int64_t *shape)
{
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return npy_error(RADDINO_ERR_IO, path, strerror(errno));
    raddino_status st = read_stream(f, path, false, data, n_dims, shape);
    fclose(f);
    return st;
}

raddino_status npy_read_float(const char *path, float **data, int *n_dims, int64_t *shape)
{
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return npy_error(RADDINO_ERR_IO, path, strerror(errno));
    raddino_status st = read_stream(f, path, true, data, n_dims, shape);
    fclose(f);
    return st;
}

raddino_status npy_read_f32_memory(const void *bytes, size_t size, const char *name,
                                   float **data, int *n_dims, int64_t *shape)
{
    *data = NULL;
    if (!name) name = "<memory>";
    if (size == 0) return npy_error(RADDINO_ERR_FORMAT, name, "not a .npy version 1 file");
    FILE *f = fmemopen((void *)(uintptr_t)bytes, size, "rb");
    if (!f) return npy_error(RADDINO_ERR_NOMEM, name, strerror(errno));
    raddino_status st = read_stream(f, name, true, data, n_dims, shape);
    fclose(f);
    return st;
}
