/* index_io.c — index files: FAISS's bytes + JSON metadata + footer, written atomically. */
#define _GNU_SOURCE   /* fopencookie: FAISS writes to a FILE*, we hash and count what it writes */
#include "index_internal.h"
#include "ivf_internal.h"

#include <faiss/c_api/index_io_c.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FOOTER_MAGIC "RDXIDX01"
#define FOOTER_SIZE 32
#define META_MAX (64 * 1024)
#define FORMAT_VERSION 1

/* ---- Checksum: four 64-bit lanes of multiply-rotate over 32-byte blocks ------------------- */

#define P1 0x9e3779b185ebca87ull
#define P2 0xc2b2ae3d27d4eb4full
#define P3 0x165667b19e3779f9ull

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static uint64_t load64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void store64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void checksum_block(index_checksum *c, const unsigned char *p)
{
    for (int i = 0; i < 4; i++) c->lane[i] = rotl(c->lane[i] + load64(p + 8 * i) * P2, 31) * P1;
}

void index_checksum_init(index_checksum *c)
{
    memset(c, 0, sizeof *c);
    c->lane[0] = P1 + P2;
    c->lane[1] = P2;
    c->lane[2] = 0;
    c->lane[3] = 0 - P1;
}

void index_checksum_update(index_checksum *c, const void *data, size_t size)
{
    const unsigned char *p = data;
    c->total += size;
    if (c->n_tail) {
        size_t take = 32 - c->n_tail < size ? 32 - c->n_tail : size;
        memcpy(c->tail + c->n_tail, p, take);
        c->n_tail += take;
        p += take;
        size -= take;
        if (c->n_tail < 32) return;
        checksum_block(c, c->tail);
        c->n_tail = 0;
    }
    for (; size >= 32; p += 32, size -= 32) checksum_block(c, p);
    memcpy(c->tail, p, size);
    c->n_tail = size;
}

uint64_t index_checksum_final(const index_checksum *c)
{
    uint64_t h = rotl(c->lane[0], 1) + rotl(c->lane[1], 7) + rotl(c->lane[2], 12) +
                 rotl(c->lane[3], 18);
    h ^= c->total * P3;
    for (size_t i = 0; i < c->n_tail; i++) h = rotl(h ^ (c->tail[i] * P3), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    return h ^ (h >> 32);
}

/* ---- Streams FAISS writes into ------------------------------------------------------------ */

typedef struct {
    int fd;             /* -1: count only */
    uint64_t bytes;
    index_checksum sum;
    int error;          /* errno of a failed write */
} sink;

static ssize_t sink_write(void *cookie, const char *buf, size_t size)
{
    sink *s = cookie;
    if (s->fd >= 0) {
        for (size_t done = 0; done < size;) {
            ssize_t w = write(s->fd, buf + done, size - done);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                s->error = w < 0 ? errno : EIO;
                return -1;
            }
            done += (size_t)w;
        }
        index_checksum_update(&s->sum, buf, size);
    }
    s->bytes += size;
    return (ssize_t)size;
}

static FILE *sink_open(sink *s, int fd)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    index_checksum_init(&s->sum);
    cookie_io_functions_t io = {.read = NULL, .write = sink_write, .seek = NULL, .close = NULL};
    return fopencookie(s, "w", io);
}

raddino_status index_serialised_size(const FaissIndex *faiss, uint64_t *bytes)
{
    sink s;
    FILE *f = sink_open(&s, -1);
    if (!f) return index_error(RADDINO_ERR_NOMEM, "index info: out of memory");
    int rc = faiss_write_index(faiss, f);
    fclose(f);
    if (rc) return index_faiss_error(rc, "index info");
    *bytes = s.bytes;
    return index_ok();
}

/* ---- Metadata ------------------------------------------------------------------------------ */

/* What the metadata of an on-disk index says about its lists file. */
typedef struct {
    int present;
    char file[256];         /* its name, in the index file's folder */
    uint64_t bytes;
    uint64_t checksum;      /* of every byte */
    uint64_t sample;        /* of the first and the last MiB */
    int rerank;
} lists_meta;

static char *meta_json(const raddino_index *ix, const raddino_index_meta *meta,
                       const lists_meta *lists)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "format", FORMAT_VERSION);
    cJSON_AddNumberToObject(o, "generation", meta ? (double)meta->generation : 0);
    cJSON_AddStringToObject(o, "model_id", meta ? meta->model_id : "");
    cJSON_AddStringToObject(o, "type", ix->type);
    cJSON_AddNumberToObject(o, "dim", ix->dim);
    cJSON_AddNumberToObject(o, "ntotal", (double)faiss_Index_ntotal(ix->faiss));
    cJSON_AddNumberToObject(o, "nprobe", ix->nprobe);
    cJSON_AddNumberToObject(o, "ef_search", ix->ef_search);
    if (ix->build_recall_queries > 0) {   /* absent in files written before it was measured */
        cJSON_AddNumberToObject(o, "build_recall", ix->build_recall);
        cJSON_AddNumberToObject(o, "build_recall_queries", ix->build_recall_queries);
        cJSON_AddNumberToObject(o, "build_recall_k", ix->build_recall_k);
        cJSON_AddNumberToObject(o, "build_recall_nprobe", ix->build_recall_nprobe);
    }
    if (lists && lists->present) {
        /* 64-bit values as hex text: a JSON number (a double) would round them. */
        char hex[17];
        cJSON_AddStringToObject(o, "lists_file", lists->file);
        cJSON_AddNumberToObject(o, "lists_bytes", (double)lists->bytes);
        snprintf(hex, sizeof hex, "%016" PRIx64, lists->checksum);
        cJSON_AddStringToObject(o, "lists_checksum", hex);
        snprintf(hex, sizeof hex, "%016" PRIx64, lists->sample);
        cJSON_AddStringToObject(o, "lists_sample", hex);
        cJSON_AddNumberToObject(o, "rerank", lists->rerank);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

typedef struct {
    raddino_index_meta meta;
    int nprobe, ef_search;
    lists_meta lists;
    double build_recall;
    int build_recall_queries, build_recall_k, build_recall_nprobe;
} saved_meta;

static int json_count(const cJSON *o, const char *key, double max, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > max ||
        v->valuedouble != (double)(uint64_t)v->valuedouble)
        return 0;
    *out = v->valuedouble;
    return 1;
}

static int json_text(const cJSON *o, const char *key, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) return 0;
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 1;
}

static raddino_status parse_meta(const char *path, const char *text, size_t size, saved_meta *out)
{
    memset(out, 0, sizeof *out);
    cJSON *o = cJSON_ParseWithLength(text, size);
    double format = 0, generation = 0, dim = 0, ntotal = 0, nprobe = 0, ef = 0, bytes = 0,
           rerank = 0;
    char sum[17] = "", sample[17] = "";
    int ok = o && json_count(o, "format", 1e9, &format) &&
             json_count(o, "generation", 9007199254740992.0, &generation) &&
             json_count(o, "dim", 65536, &dim) && json_count(o, "ntotal", 1e18, &ntotal) &&
             json_count(o, "nprobe", 1e9, &nprobe) && json_count(o, "ef_search", 1e9, &ef) &&
             json_text(o, "model_id", out->meta.model_id, sizeof out->meta.model_id) &&
             json_text(o, "type", out->meta.type, sizeof out->meta.type);
    if (ok && cJSON_GetObjectItemCaseSensitive(o, "build_recall")) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "build_recall");
        double queries = 0, k = 0, probe = 0;
        ok = cJSON_IsNumber(r) && r->valuedouble >= 0 && r->valuedouble <= 1 &&
             json_count(o, "build_recall_queries", 1e9, &queries) && queries >= 1 &&
             json_count(o, "build_recall_k", 1e6, &k) &&
             json_count(o, "build_recall_nprobe", 1e9, &probe);
        if (ok) {
            out->build_recall = r->valuedouble;
            out->build_recall_queries = (int)queries;
            out->build_recall_k = (int)k;
            out->build_recall_nprobe = (int)probe;
        }
    }
    if (ok && cJSON_GetObjectItemCaseSensitive(o, "lists_file")) {
        char *end1, *end2;
        ok = json_text(o, "lists_file", out->lists.file, sizeof out->lists.file) &&
             out->lists.file[0] && !strchr(out->lists.file, '/') &&
             json_count(o, "lists_bytes", 1e18, &bytes) && json_count(o, "rerank", 1e6, &rerank) &&
             json_text(o, "lists_checksum", sum, sizeof sum) &&
             json_text(o, "lists_sample", sample, sizeof sample);
        out->lists.checksum = ok ? strtoull(sum, &end1, 16) : 0;
        out->lists.sample = ok ? strtoull(sample, &end2, 16) : 0;
        ok = ok && strlen(sum) == 16 && !*end1 && strlen(sample) == 16 && !*end2;
        out->lists.present = ok;
        if (ok) snprintf(out->meta.lists_file, sizeof out->meta.lists_file, "%s", out->lists.file);
        out->lists.bytes = (uint64_t)bytes;
        out->lists.rerank = (int)rerank;
    }
    cJSON_Delete(o);
    if (!ok) return index_error(RADDINO_ERR_FORMAT, "%s: damaged index metadata", path);
    if (format != FORMAT_VERSION)
        return index_error(RADDINO_ERR_UNSUPPORTED, "%s: index format %.0f (this build reads %d)",
                           path, format, FORMAT_VERSION);
    out->meta.generation = (uint64_t)generation;
    out->meta.dim = (int)dim;
    out->meta.ntotal = (int64_t)ntotal;
    out->nprobe = (int)nprobe;
    out->ef_search = (int)ef;
    return index_ok();
}

/* ---- Save ------------------------------------------------------------------------------------ */

static raddino_status fsync_folder(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return index_error(RADDINO_ERR_NOMEM, "%s: out of memory", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0) return index_error(RADDINO_ERR_IO, "%s: folder: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    /* Some file systems refuse fsync on folders; the rename itself has happened. */
    if (rc != 0 && errno != EINVAL && errno != EROFS)
        return index_error(RADDINO_ERR_IO, "%s: folder: %s", path, strerror(errno));
    return index_ok();
}

/* Checksums of a lists file: all of it (when `all`) and its first and last MiB. */
static raddino_status lists_checksums(const char *path, uint64_t size, int all, uint64_t *sum,
                                      uint64_t *sample)
{
    enum { BLOCK = 1 << 20 };
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return index_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char *buf = malloc(BLOCK);
    raddino_status st = buf ? index_ok() : index_error(RADDINO_ERR_NOMEM, "out of memory");
    index_checksum c;
    uint64_t at = 0;
    if (all) {
        index_checksum_init(&c);
        for (; !st.code && at < size;) {
            size_t want = size - at < BLOCK ? (size_t)(size - at) : BLOCK;
            ssize_t r = pread(fd, buf, want, (off_t)at);
            if (r != (ssize_t)want) {
                st = index_error(RADDINO_ERR_FORMAT, "%s: lists file shorter than recorded",
                                 path);
                break;
            }
            index_checksum_update(&c, buf, want);
            at += want;
        }
        if (!st.code) *sum = index_checksum_final(&c);
    }
    index_checksum_init(&c);
    uint64_t starts[2] = {0, size > BLOCK ? size - BLOCK : 0};
    for (int i = 0; i < 2 && !st.code; i++) {
        size_t want = size < BLOCK ? (size_t)size : BLOCK;
        ssize_t r = pread(fd, buf, want, (off_t)starts[i]);
        if (r != (ssize_t)want)
            st = index_error(RADDINO_ERR_FORMAT, "%s: lists file shorter than recorded", path);
        else
            index_checksum_update(&c, buf, want);
    }
    if (!st.code) *sample = index_checksum_final(&c);
    free(buf);
    close(fd);
    return st;
}

static int same_folder(const char *a, const char *b)
{
    char *ca = strdup(a), *cb = strdup(b);
    struct stat sa, sb;
    int same = ca && cb && stat(dirname(ca), &sa) == 0 && stat(dirname(cb), &sb) == 0 &&
               sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    free(ca);
    free(cb);
    return same;
}

/* For an on-disk index: where its lists are, checked to sit beside `path`, and checksummed. */
static raddino_status describe_lists(const raddino_index *ix, const char *path, lists_meta *out)
{
    memset(out, 0, sizeof *out);
    const char *lists = NULL;
    uint64_t bytes = 0;
    int on_disk = 0;
    if (!index_ivf_describe(ix->faiss, NULL, NULL, &on_disk, &lists, &bytes) || !on_disk)
        return index_ok();
    if (!lists || !same_folder(lists, path))
        return index_error(RADDINO_ERR_ARGUMENT,
                           "%s: the lists file %s must be in the index file's folder", path,
                           lists ? lists : "(none)");
    const char *base = strrchr(lists, '/');
    base = base ? base + 1 : lists;
    if (strlen(base) >= sizeof out->file)
        return index_error(RADDINO_ERR_ARGUMENT, "%s: lists file name too long", lists);
    struct stat sb;
    if (stat(lists, &sb) != 0)
        return index_error(RADDINO_ERR_IO, "%s: %s", lists, strerror(errno));
    if ((uint64_t)sb.st_size != bytes)
        return index_error(RADDINO_ERR_FORMAT, "%s: lists file of %lld bytes, the index maps %llu",
                           lists, (long long)sb.st_size, (unsigned long long)bytes);
    snprintf(out->file, sizeof out->file, "%s", base);
    out->bytes = bytes;
    out->rerank = ix->rerank;
    out->present = 1;
    return lists_checksums(lists, bytes, 1, &out->checksum, &out->sample);
}

static raddino_status write_body(const raddino_index *ix, const raddino_index_meta *meta, int fd,
                                 const char *path)
{
    lists_meta lists;
    raddino_status lst = describe_lists(ix, path, &lists);
    if (lst.code) return lst;
    char *json = meta_json(ix, meta, &lists);
    sink s;
    FILE *f = json ? sink_open(&s, fd) : NULL;
    /* An on-disk index records its lists file by its bare name (load finds it in the index
     * file's folder); the mapped path is put back after writing. */
    char *full = NULL;
    if (f && lists.present) {
        const char *now = NULL;
        index_ivf_describe(ix->faiss, NULL, NULL, NULL, &now, NULL);
        full = now ? strdup(now) : NULL;
        if (!full || index_ivf_set_lists_name(ix->faiss, lists.file) != 0) {
            fclose(f);
            f = NULL;
        }
    }
    if (!f) {
        free(json);
        free(full);
        return index_error(RADDINO_ERR_NOMEM, "%s: out of memory", path);
    }
    raddino_status st = index_ok();
    int rc = faiss_write_index(ix->faiss, f);
    if (full) {
        index_ivf_set_lists_name(ix->faiss, full);
        free(full);
    }
    if (rc == 0 && fflush(f) != 0) rc = -1;
    uint64_t faiss_bytes = s.bytes;
    size_t json_len = strlen(json);
    if (rc == 0 && (fwrite(json, 1, json_len, f) != json_len || fflush(f) != 0)) rc = -1;
    fclose(f);
    free(json);
    if (s.error) return index_error(RADDINO_ERR_IO, "%s: %s", path, strerror(s.error));
    if (rc) return index_faiss_error(rc, path);
    unsigned char footer[FOOTER_SIZE];
    memcpy(footer, FOOTER_MAGIC, 8);
    store64(footer + 8, faiss_bytes);
    store64(footer + 16, json_len);
    store64(footer + 24, index_checksum_final(&s.sum));
    s.fd = fd;
    if (sink_write(&s, (const char *)footer, sizeof footer) < 0 || fsync(fd) != 0)
        st = index_error(RADDINO_ERR_IO, "%s: %s", path, strerror(s.error ? s.error : errno));
    return st;
}

raddino_status raddino_index_save(const raddino_index *index, const char *path,
                                  const raddino_index_meta *meta)
{
    if (!index || !path || !*path) return index_error(RADDINO_ERR_ARGUMENT, "index save: no path");
    if (meta && (memchr(meta->model_id, 0, sizeof meta->model_id) == NULL ||
                 meta->generation > (1ull << 53)))
        return index_error(RADDINO_ERR_ARGUMENT, "%s: bad index metadata", path);
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) return index_error(RADDINO_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        raddino_status st = index_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    raddino_status st = write_body(index, meta, fd, path);
    if (close(fd) != 0 && !st.code)
        st = index_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    if (!st.code && rename(tmp, path) != 0)
        st = index_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    if (st.code)
        unlink(tmp);
    else
        st = fsync_folder(path);
    free(tmp);
    return st;
}

/* ---- Load ------------------------------------------------------------------------------------ */

typedef struct {
    uint64_t faiss_bytes, meta_bytes, checksum;
    char *meta;   /* meta_bytes + NUL */
} file_layout;

/* Reads and checks the footer and the metadata block; nothing of FAISS's part. */
static raddino_status read_layout(FILE *f, const char *path, file_layout *out)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0)
        return index_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return index_error(RADDINO_ERR_IO, "%s: not a file", path);
    uint64_t size = (uint64_t)sb.st_size;
    unsigned char footer[FOOTER_SIZE];
    if (size < FOOTER_SIZE || fseeko(f, (off_t)(size - FOOTER_SIZE), SEEK_SET) != 0 ||
        fread(footer, 1, FOOTER_SIZE, f) != FOOTER_SIZE || memcmp(footer, FOOTER_MAGIC, 8) != 0)
        return index_error(RADDINO_ERR_FORMAT,
                           "%s: not a raddino index file (truncated or damaged)", path);
    out->faiss_bytes = load64(footer + 8);
    out->meta_bytes = load64(footer + 16);
    out->checksum = load64(footer + 24);
    if (out->meta_bytes > META_MAX || out->faiss_bytes > size ||
        out->faiss_bytes + out->meta_bytes + FOOTER_SIZE != size)
        return index_error(RADDINO_ERR_FORMAT, "%s: index file damaged (sizes do not add up)",
                           path);
    out->meta = malloc(out->meta_bytes + 1);
    if (!out->meta) return index_error(RADDINO_ERR_NOMEM, "%s: out of memory", path);
    if (fseeko(f, (off_t)out->faiss_bytes, SEEK_SET) != 0 ||
        fread(out->meta, 1, out->meta_bytes, f) != out->meta_bytes) {
        free(out->meta);
        out->meta = NULL;
        return index_error(RADDINO_ERR_IO, "%s: cannot read the index metadata", path);
    }
    out->meta[out->meta_bytes] = 0;
    return index_ok();
}

static raddino_status verify_checksum(FILE *f, const char *path, const file_layout *lay)
{
    enum { BLOCK = 1 << 20 };
    unsigned char *buf = malloc(BLOCK);
    if (!buf) return index_error(RADDINO_ERR_NOMEM, "%s: out of memory", path);
    index_checksum sum;
    index_checksum_init(&sum);
    uint64_t left = lay->faiss_bytes + lay->meta_bytes;
    int ok = fseeko(f, 0, SEEK_SET) == 0;
    while (ok && left > 0) {
        size_t want = left < BLOCK ? (size_t)left : BLOCK;
        ok = fread(buf, 1, want, f) == want;
        index_checksum_update(&sum, buf, want);
        left -= want;
    }
    free(buf);
    if (!ok) return index_error(RADDINO_ERR_IO, "%s: read error", path);
    if (index_checksum_final(&sum) != lay->checksum)
        return index_error(RADDINO_ERR_FORMAT, "%s: index file damaged (checksum mismatch)", path);
    return index_ok();
}

/* The lists file named by an index file's metadata, in that file's folder. */
static raddino_status lists_path_of(const char *path, const lists_meta *lists, char **out)
{
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0, size = dir + strlen(lists->file) + 1;
    *out = malloc(size);
    if (!*out) return index_error(RADDINO_ERR_NOMEM, "%s: out of memory", path);
    snprintf(*out, size, "%.*s%s", (int)dir, path, lists->file);
    return index_ok();
}

/* Before FAISS maps the lists file: it is there, of the recorded size, with the recorded first
 * and last MiB (a cheap test that it is the file this index was saved with). */
static raddino_status check_lists_file(const char *path, const lists_meta *lists)
{
    char *lp;
    raddino_status st = lists_path_of(path, lists, &lp);
    if (st.code) return st;
    struct stat sb;
    uint64_t sum = 0, sample = 0;
    if (stat(lp, &sb) != 0)
        st = index_error(RADDINO_ERR_IO, "%s: lists file of %s: %s", lp, path, strerror(errno));
    else if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != lists->bytes)
        st = index_error(RADDINO_ERR_FORMAT,
                         "%s: lists file damaged (%lld bytes, the index recorded %llu)", lp,
                         (long long)sb.st_size, (unsigned long long)lists->bytes);
    else
        st = lists_checksums(lp, lists->bytes, 0, &sum, &sample);
    if (!st.code && sample != lists->sample)
        st = index_error(RADDINO_ERR_FORMAT, "%s: lists file damaged (checksum mismatch)", lp);
    free(lp);
    return st;
}

static raddino_status open_layout(const char *path, FILE **f, file_layout *lay, saved_meta *sm)
{
    *f = fopen(path, "rb");
    if (!*f) return index_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    raddino_status st = read_layout(*f, path, lay);
    if (!st.code) st = parse_meta(path, lay->meta, lay->meta_bytes, sm);
    free(lay->meta);
    lay->meta = NULL;
    if (st.code) {
        fclose(*f);
        *f = NULL;
    }
    return st;
}

raddino_status raddino_index_read_meta(const char *path, raddino_index_meta *meta)
{
    if (!path || !meta) return index_error(RADDINO_ERR_ARGUMENT, "index meta: bad arguments");
    FILE *f;
    file_layout lay;
    saved_meta sm;
    raddino_status st = open_layout(path, &f, &lay, &sm);
    if (st.code) return st;
    fclose(f);
    *meta = sm.meta;
    return index_ok();
}

raddino_status raddino_index_load(const char *path, const raddino_index_params *params,
                                  raddino_index **out, raddino_index_meta *meta)
{
    if (!path || !out) return index_error(RADDINO_ERR_ARGUMENT, "index load: bad arguments");
    *out = NULL;
    raddino_index_params p = params ? *params : raddino_index_default_params();
    FILE *f;
    file_layout lay;
    saved_meta sm;
    raddino_status st = open_layout(path, &f, &lay, &sm);
    if (st.code) return st;
    st = verify_checksum(f, path, &lay);
    if (!st.code && sm.lists.present) st = check_lists_file(path, &sm.lists);
    FaissIndex *faiss = NULL;
    if (!st.code && fseeko(f, 0, SEEK_SET) != 0)
        st = index_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    if (!st.code) {
        char err[RADDINO_MESSAGE_MAX];
        int rc = 0;
        if (sm.lists.present) {
            /* Small (quantizer and list table): read whole, the lists file named in place. */
            char *lp = NULL;
            unsigned char *bytes = lay.faiss_bytes <= ((uint64_t)1 << 34)
                                       ? malloc(lay.faiss_bytes ? lay.faiss_bytes : 1)
                                       : NULL;
            st = bytes ? lists_path_of(path, &sm.lists, &lp)
                       : index_error(RADDINO_ERR_NOMEM, "%s: out of memory", path);
            if (!st.code && fread(bytes, 1, lay.faiss_bytes, f) != lay.faiss_bytes)
                st = index_error(RADDINO_ERR_IO, "%s: read error", path);
            if (!st.code)
                rc = index_read_ondisk(bytes, lay.faiss_bytes, sm.lists.file, lp, &faiss, err,
                                       sizeof err);
            free(bytes);
            free(lp);
        } else {
            rc = index_read_faiss_at(f, &faiss, err, sizeof err);
        }
        const char *lists = NULL;
        uint64_t lists_bytes = 0;
        int on_disk = 0;
        if (!rc && faiss) index_ivf_describe(faiss, NULL, NULL, &on_disk, &lists, &lists_bytes);
        if (st.code) {
            /* reading the bytes failed: st says why */
        } else if (rc) {
            st = index_error(RADDINO_ERR_FORMAT, "%s: %s", path, err);
        } else if (on_disk != sm.lists.present || (on_disk && lists_bytes != sm.lists.bytes)) {
            st = index_error(RADDINO_ERR_FORMAT, "%s: index does not match its lists file", path);
        } else if (index_ivf_check_lists(faiss, err, sizeof err)) {
            st = index_error(RADDINO_ERR_FORMAT, "%s: %s", lists, err);
        } else if ((uint64_t)ftello(f) != lay.faiss_bytes || faiss_Index_d(faiss) != sm.meta.dim ||
                   faiss_Index_ntotal(faiss) != sm.meta.ntotal) {
            st = index_error(RADDINO_ERR_FORMAT, "%s: index does not match its metadata", path);
        }
    }
    fclose(f);
    if (st.code) {
        if (faiss) faiss_Index_free(faiss);
        return st;
    }
    raddino_index *ix;
    st = index_wrap(faiss, sm.meta.type, p.n_threads, p.nprobe ? p.nprobe : sm.nprobe,
                    p.ef_search ? p.ef_search : sm.ef_search, &ix);
    if (st.code) return st;
    ix->train_size = p.train_size;
    ix->seed = p.seed;
    if (sm.lists.present && sm.lists.rerank > 0) ix->rerank = sm.lists.rerank;
    ix->build_recall = sm.build_recall;
    ix->build_recall_queries = sm.build_recall_queries;
    ix->build_recall_k = sm.build_recall_k;
    ix->build_recall_nprobe = sm.build_recall_nprobe;
    if (p.rerank > 0) ix->rerank = p.rerank;
    if (meta) *meta = sm.meta;
    *out = ix;
    return index_ok();
}

raddino_status raddino_index_verify_lists(const char *index_path)
{
    if (!index_path) return index_error(RADDINO_ERR_ARGUMENT, "verify lists: no path");
    FILE *f;
    file_layout lay;
    saved_meta sm;
    raddino_status st = open_layout(index_path, &f, &lay, &sm);
    if (st.code) return st;
    fclose(f);
    if (!sm.lists.present) return index_ok();
    st = check_lists_file(index_path, &sm.lists);
    char *lp = NULL;
    if (!st.code) st = lists_path_of(index_path, &sm.lists, &lp);
    uint64_t sum = 0, sample = 0;
    if (!st.code) st = lists_checksums(lp, sm.lists.bytes, 1, &sum, &sample);
    if (!st.code && sum != sm.lists.checksum)
        st = index_error(RADDINO_ERR_FORMAT, "%s: lists file damaged (checksum mismatch)", lp);
    free(lp);
    return st;
}
