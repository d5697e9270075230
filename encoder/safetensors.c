/* safetensors.c — memory-mapped safetensors reader.
 *
 * The file is treated as hostile: every number in the header is checked before it is used, so a
 * truncated or crafted file gives a one-line error instead of a read outside the mapping. The
 * format: 8-byte little-endian header length N, N bytes of JSON, then the data section; each
 * tensor's data_offsets are relative to the start of the data section. */
#include "encoder_status.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* More tensors than this is not a model we could use, and each costs ~350 bytes of bookkeeping:
 * refuse rather than let a 100 MB header of tiny entries allocate gigabytes. */
#define SAFETENSORS_MAX_TENSORS (1 << 17)

/* Doubles represent every integer up to 2^53 exactly; beyond that "is it an integer" is moot. */
#define MAX_EXACT_INT 9007199254740992.0

static const struct {
    const char *name;
    safetensors_dtype dtype;
    unsigned size;
} dtype_table[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
    {"I64", ST_I64, 8}, {"I32", ST_I32, 4}, {"I16", ST_I16, 2},   {"I8", ST_I8, 1},
    {"U8", ST_U8, 1},   {"BOOL", ST_BOOL, 1},
};
#define N_DTYPES (sizeof dtype_table / sizeof dtype_table[0])

const char *safetensors_dtype_name(safetensors_dtype dtype)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtype_table[i].dtype == dtype) return dtype_table[i].name;
    return "unknown";
}

static unsigned dtype_size(safetensors_dtype dtype)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtype_table[i].dtype == dtype) return dtype_table[i].size;
    return 0;
}

static bool dtype_from_name(const char *name, safetensors_dtype *out)
{
    for (size_t i = 0; i < N_DTYPES; i++) {
        if (strcmp(dtype_table[i].name, name) == 0) {
            *out = dtype_table[i].dtype;
            return true;
        }
    }
    return false;
}

/* A JSON number that is a whole, non-negative value a double holds exactly. */
static bool json_uint(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= MAX_EXACT_INT) || v != floor(v)) return false;
    *out = (uint64_t)v;
    return true;
}

static raddino_status parse_shape(const char *path, const char *name, const cJSON *shape,
                                  safetensors_tensor *t)
{
    if (!cJSON_IsArray(shape))
        return status_error(RADDINO_ERR_FORMAT, "%s: tensor %s: shape is not an array", path, name);
    int n = cJSON_GetArraySize(shape);
    if (n > SAFETENSORS_MAX_DIMS)
        return status_error(RADDINO_ERR_FORMAT, "%s: tensor %s: shape has %d dimensions (max %d)",
                            path, name, n, SAFETENSORS_MAX_DIMS);
    t->n_dims = n;
    t->n_elements = 1;  /* a scalar (shape []) has one element */
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++) {
        uint64_t v;
        if (!json_uint(d, &v) || v > INT64_MAX)
            return status_error(RADDINO_ERR_FORMAT,
                                "%s: tensor %s: shape[%d] is not a non-negative integer", path,
                                name, i);
        t->shape[i] = (int64_t)v;
        if (__builtin_mul_overflow(t->n_elements, v, &t->n_elements))
            return status_error(RADDINO_ERR_FORMAT, "%s: tensor %s: element count overflows",
                                path, name);
    }
    return status_ok();
}

static raddino_status parse_offsets(const char *path, const char *name, const cJSON *offsets,
                                    uint64_t data_size, safetensors_tensor *t)
{
    uint64_t begin, end;
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !json_uint(offsets->child, &begin) || !json_uint(offsets->child->next, &end))
        return status_error(RADDINO_ERR_FORMAT,
                            "%s: tensor %s: data_offsets is not [begin, end] of integers", path,
                            name);
    if (begin > end)
        return status_error(RADDINO_ERR_FORMAT, "%s: tensor %s: data_offsets begin %llu > end %llu",
                            path, name, (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return status_error(RADDINO_ERR_FORMAT,
                            "%s: tensor %s: data_offsets end %llu is past the data section "
                            "(%llu bytes; file truncated?)",
                            path, name, (unsigned long long)end, (unsigned long long)data_size);
    uint64_t bytes;
    if (__builtin_mul_overflow(t->n_elements, (uint64_t)dtype_size(t->dtype), &bytes))
        return status_error(RADDINO_ERR_FORMAT, "%s: tensor %s: byte size overflows", path, name);
    if (bytes != end - begin)
        return status_error(RADDINO_ERR_FORMAT,
                            "%s: tensor %s: size mismatch: data_offsets span %llu bytes but "
                            "shape and dtype %s need %llu",
                            path, name, (unsigned long long)(end - begin),
                            safetensors_dtype_name(t->dtype), (unsigned long long)bytes);
    t->begin = begin;
    t->end = end;
    return status_ok();
}

/* One header entry: {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}. */
static raddino_status parse_entry(const char *path, const cJSON *item, const safetensors_file *f,
                                  safetensors_tensor *t)
{
    const char *name = item->string;
    if (strlen(name) >= SAFETENSORS_MAX_NAME)
        return status_error(RADDINO_ERR_FORMAT, "%s: tensor name longer than %d bytes: %.64s...",
                            path, SAFETENSORS_MAX_NAME - 1, name);
    memcpy(t->name, name, strlen(name) + 1);
    if (!cJSON_IsObject(item))
        return status_error(RADDINO_ERR_FORMAT, "%s: tensor %s: entry is not an object", path,
                            name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    if (!cJSON_IsString(dtype))
        return status_error(RADDINO_ERR_FORMAT, "%s: tensor %s: dtype missing or not a string",
                            path, name);
    if (!dtype_from_name(dtype->valuestring, &t->dtype))
        return status_error(RADDINO_ERR_FORMAT, "%s: tensor %s: unknown dtype \"%.32s\"", path,
                            name, dtype->valuestring);
    raddino_status st =
        parse_shape(path, name, cJSON_GetObjectItemCaseSensitive(item, "shape"), t);
    if (st.code) return st;
    st = parse_offsets(path, name, cJSON_GetObjectItemCaseSensitive(item, "data_offsets"),
                       f->data_size, t);
    if (st.code) return st;
    t->data = f->data_section + t->begin;
    return status_ok();
}

/* __metadata__ is free-form text for us; the format says a map of strings, so check just that. */
static raddino_status check_metadata(const char *path, const cJSON *meta)
{
    if (!cJSON_IsObject(meta))
        return status_error(RADDINO_ERR_FORMAT, "%s: __metadata__ is not an object", path);
    for (const cJSON *m = meta->child; m; m = m->next)
        if (!cJSON_IsString(m))
            return status_error(RADDINO_ERR_FORMAT, "%s: __metadata__ value %.64s is not a string",
                                path, m->string);
    return status_ok();
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const safetensors_tensor *)a)->name, ((const safetensors_tensor *)b)->name);
}

static int cmp_begin(const void *a, const void *b)
{
    const safetensors_tensor *x = *(const safetensors_tensor *const *)a;
    const safetensors_tensor *y = *(const safetensors_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Two tensors sharing bytes would let a write through one (we never write, but converted copies
 * and aliasing assumptions elsewhere would break) — and no valid writer produces that. */
static raddino_status check_overlaps(const char *path, const safetensors_file *f)
{
    if (f->n_tensors < 2) return status_ok();
    const safetensors_tensor **order = malloc((size_t)f->n_tensors * sizeof *order);
    if (!order) return status_error(RADDINO_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n_tensors, sizeof *order, cmp_begin);
    raddino_status st = status_ok();
    const safetensors_tensor *last = NULL;  /* the non-empty tensor reaching furthest so far */
    for (int i = 0; i < f->n_tensors && !st.code; i++) {
        const safetensors_tensor *t = order[i];
        if (t->begin == t->end) continue;  /* empty tensors own no bytes */
        if (last && t->begin < last->end)
            st = status_error(RADDINO_ERR_FORMAT, "%s: tensors %s and %s overlap", path,
                              last->name, t->name);
        if (!last || t->end > last->end) last = t;
    }
    free(order);
    return st;
}

static raddino_status check_duplicates(const char *path, const safetensors_file *f)
{
    for (int i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return status_error(RADDINO_ERR_FORMAT, "%s: tensor %s appears twice", path,
                                f->tensors[i].name);
    return status_ok();
}

static bool only_whitespace(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') return false;
    return true;
}

static raddino_status parse_entries(const char *path, const cJSON *root, safetensors_file *f)
{
    int n = 0;
    for (const cJSON *it = root->child; it; it = it->next)
        if (strcmp(it->string, "__metadata__") != 0) n++;
    if (n > SAFETENSORS_MAX_TENSORS)
        return status_error(RADDINO_ERR_TOO_LARGE, "%s: %d tensors (max %d)", path, n,
                            SAFETENSORS_MAX_TENSORS);
    f->tensors = calloc(n ? (size_t)n : 1, sizeof *f->tensors);
    if (!f->tensors) return status_error(RADDINO_ERR_NOMEM, "%s: out of memory", path);
    for (const cJSON *it = root->child; it; it = it->next) {
        raddino_status st = strcmp(it->string, "__metadata__") == 0
                                ? check_metadata(path, it)
                                : parse_entry(path, it, f, &f->tensors[f->n_tensors++]);
        if (st.code) return st;
    }
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_name);
    raddino_status st = check_duplicates(path, f);
    if (st.code) return st;
    return check_overlaps(path, f);
}

static raddino_status parse_header(const char *path, safetensors_file *f, uint64_t header_len)
{
    /* A NUL-terminated private copy: cJSON never reads past it, whatever the bytes are. */
    char *text = malloc(header_len + 1);
    if (!text) return status_error(RADDINO_ERR_NOMEM, "%s: out of memory for the header", path);
    memcpy(text, (const uint8_t *)f->map + 8, header_len);
    text[header_len] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, header_len, &end, 0);
    raddino_status st = status_ok();
    if (!root)
        st = status_error(RADDINO_ERR_FORMAT, "%s: header is not valid JSON (at byte %lld)", path,
                          end ? (long long)(end - text) : -1LL);
    else if (!only_whitespace(end, text + header_len))
        st = status_error(RADDINO_ERR_FORMAT, "%s: header has bytes after the JSON (at byte %lld)",
                          path, (long long)(end - text));
    else if (!cJSON_IsObject(root))
        st = status_error(RADDINO_ERR_FORMAT, "%s: header is not a JSON object", path);
    else
        st = parse_entries(path, root, f);
    cJSON_Delete(root);
    free(text);
    return st;
}

static raddino_status map_file(const char *path, safetensors_file *f)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return status_error(RADDINO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return status_error(RADDINO_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return status_error(RADDINO_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return status_error(RADDINO_ERR_FORMAT,
                            "%s: truncated: %lld bytes, a safetensors file starts with an 8-byte "
                            "header length",
                            path, (long long)sb.st_size);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);  /* the mapping keeps the file alive */
    if (map == MAP_FAILED) return status_error(RADDINO_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    f->map = map;
    f->map_size = (size_t)sb.st_size;
    f->mapped = true;
    return status_ok();
}

/* Validates f->map[0 .. map_size): the 8-byte length, then the header. */
static raddino_status parse_file(const char *path, safetensors_file *f)
{
    if (f->map_size < 8)
        return status_error(RADDINO_ERR_FORMAT,
                            "%s: truncated: %llu bytes, a safetensors file starts with an 8-byte "
                            "header length",
                            path, (unsigned long long)f->map_size);
    const uint8_t *p = f->map;
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = header_len << 8 | p[i];
    if (header_len > SAFETENSORS_MAX_HEADER)
        return status_error(RADDINO_ERR_TOO_LARGE,
                            "%s: header length %llu is over the %u-byte limit", path,
                            (unsigned long long)header_len, SAFETENSORS_MAX_HEADER);
    if (header_len > f->map_size - 8)
        return status_error(RADDINO_ERR_FORMAT,
                            "%s: truncated: header length %llu but only %llu bytes follow", path,
                            (unsigned long long)header_len,
                            (unsigned long long)(f->map_size - 8));
    f->data_section = p + 8 + header_len;
    f->data_size = f->map_size - 8 - header_len;
    return parse_header(path, f, header_len);
}

raddino_status safetensors_open(const char *path, safetensors_file *out)
{
    if (!path || !out) return status_error(RADDINO_ERR_ARGUMENT, "safetensors_open: NULL argument");
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", path);
    raddino_status st = map_file(path, out);
    if (!st.code) st = parse_file(path, out);
    if (st.code) safetensors_close(out);
    return st;
}

raddino_status safetensors_open_memory(const void *data, size_t size, const char *name,
                                       safetensors_file *out)
{
    if (!out || (!data && size))
        return status_error(RADDINO_ERR_ARGUMENT, "safetensors_open_memory: NULL argument");
    if (!name) name = "<memory>";
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", name);
    out->map = (void *)(uintptr_t)data;     /* never written, never unmapped (mapped false) */
    out->map_size = size;
    raddino_status st = parse_file(out->path, out);
    if (st.code) safetensors_close(out);
    return st;
}

void safetensors_close(safetensors_file *f)
{
    if (!f) return;
    if (f->map && f->mapped) munmap(f->map, f->map_size);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name)
{
    if (!f || !name || !f->tensors || strlen(name) >= SAFETENSORS_MAX_NAME) return NULL;
    safetensors_tensor key;
    memcpy(key.name, name, strlen(name) + 1);
    return bsearch(&key, f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_name);
}
