/* serve_api.c — the JSON API of raddino serve: stats, clusters, image rows, thumbnails and
 * search. Every answer is built in memory (open_memstream) and handed back as a serve_reply.
 * Image ids are the only way a request names an image: files are read from the paths the store
 * holds, never from anything a request says. */
#include "serve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

/* ---- replies ------------------------------------------------------------------------------ */

typedef struct {
    FILE *f;
    char *buf;
    size_t size;
} json_out;

static int json_open(json_out *o)
{
    o->buf = NULL;
    o->size = 0;
    o->f = open_memstream(&o->buf, &o->size);
    return o->f != NULL;
}

/* Closes the stream into the reply (or a 500 when memory ran out). */
static void json_finish(json_out *o, serve_reply *r, unsigned status)
{
    int bad = ferror(o->f);
    if (fclose(o->f) != 0) bad = 1;
    if (bad) {
        free(o->buf);
        serve_error(r, 500, "out of memory");
        return;
    }
    r->status = status;
    r->content_type = "application/json";
    r->body = o->buf;
    r->size = o->size;
}

void serve_error(serve_reply *r, unsigned status, const char *message)
{
    json_out o;
    r->status = status;
    r->content_type = "application/json";
    r->body = NULL;
    r->size = 0;
    if (!json_open(&o)) return;     /* the caller answers with an empty body */
    fputs("{\"error\": ", o.f);
    cli_json_string(o.f, message);
    fputs("}\n", o.f);
    if (fclose(o.f) != 0) {
        free(o.buf);
        return;
    }
    r->body = o.buf;
    r->size = o.size;
}

/* The collection, with a read transaction of its own: one consistent view of the database for
 * this request, ended before the next, so the WAL can be checkpointed between requests. */
static raddino_store *read_lock(serve_state *s)
{
    pthread_mutex_lock(&s->collection_lock);
    raddino_store *db = raddino_collection_store(s->collection);
    raddino_store_read_begin(db);   /* when it fails, each statement reads on its own */
    return db;
}

static void read_unlock(serve_state *s)
{
    raddino_store_read_end(raddino_collection_store(s->collection));
    pthread_mutex_unlock(&s->collection_lock);
}

void serve_queue_lock(void *state)
{
    read_lock(state);
}

void serve_queue_unlock(void *state)
{
    read_unlock(state);
}

/* A library status as the reply's error message. */
static void status_error(serve_reply *r, unsigned status, const raddino_status *st)
{
    serve_error(r, status, st->message);
}

/* ---- stats -------------------------------------------------------------------------------- */

void serve_stats(serve_state *s, serve_reply *r)
{
    raddino_store_stats st;
    raddino_collection_info info;
    raddino_status rs = raddino_store_get_stats(read_lock(s), &st);
    raddino_collection_get_info(s->collection, &info);
    read_unlock(s);
    pthread_mutex_lock(&s->decode_lock);
    int decoding = s->decoding, waiting = s->waiting;
    long long cancelled = s->uploads_cancelled, refused = s->uploads_refused;
    pthread_mutex_unlock(&s->decode_lock);
    if (rs.code) {
        status_error(r, 500, &rs);
        return;
    }
    json_out o;
    if (!json_open(&o)) {
        serve_error(r, 500, "out of memory");
        return;
    }
    fprintf(o.f,
            "{\"images\": %lld, \"ok\": %lld, \"failed\": %lld, \"vectors\": %lld, "
            "\"dicom\": %lld, \"dim\": %d, \"generation\": %lld, \"indexed\": %lld, "
            "\"index_origin\": \"%s\", \"weights_sha256\": ",
            (long long)st.images, (long long)st.ok, (long long)st.failed,
            (long long)st.vectors, (long long)st.dicom, st.dim, (long long)info.generation,
            (long long)info.vectors, cli_origin_name(info.origin));
    cli_json_string(o.f, st.weights_sha256);
    fputs(", \"repository\": ", o.f);
    cli_json_string(o.f, st.repository);
    fprintf(o.f,
            ", \"model_loaded\": %s, \"uploads\": {\"decoding\": %d, \"waiting\": %d, "
            "\"cancelled\": %lld, \"refused_busy\": %lld, \"max_pixels\": %llu, "
            "\"max_scans\": %u}",
            s->encoder ? "true" : "false", decoding, waiting, cancelled, refused,
            (unsigned long long)s->upload.max_pixels, s->upload.max_scans);
    raddino_search_queue_stats qs;
    raddino_search_queue_get_stats(s->queue, &qs);     /* zeros without a queue */
    fprintf(o.f,
            ", \"search_batches\": {\"batches\": %lld, \"queries\": %lld, \"largest\": %d, "
            "\"max_batch\": %d}}\n",
            qs.batches, qs.queries, qs.largest, qs.max_batch);
    json_finish(&o, r, 200);
}

/* ---- clusters ----------------------------------------------------------------------------- */

typedef struct {
    FILE *f;
    int cluster;        /* the one being written, -1 before the first */
    int64_t size;       /* its members so far */
    int shown;
} cluster_walk;

static void end_cluster(cluster_walk *w)
{
    if (w->cluster >= 0) fprintf(w->f, "], \"size\": %lld}", (long long)w->size);
}

static int on_assignment(void *user, int64_t image_id, const char *path, int cluster,
                         float distance)
{
    cluster_walk *w = user;
    if (cluster != w->cluster) {
        end_cluster(w);
        fprintf(w->f, "%s{\"cluster\": %d, \"exemplars\": [", w->cluster >= 0 ? ", " : "",
                cluster);
        w->cluster = cluster;
        w->size = 0;
        w->shown = 0;
    }
    w->size++;
    if (w->shown < SERVE_CLUSTER_EXEMPLARS) {
        fprintf(w->f, "%s{\"id\": %lld, \"distance\": %.6f, \"path\": ", w->shown ? ", " : "",
                (long long)image_id, distance);
        cli_json_string(w->f, path);
        fputc('}', w->f);
        w->shown++;
    }
    return 0;
}

void serve_clusters(serve_state *s, serve_reply *r)
{
    json_out o;
    if (!json_open(&o)) {
        serve_error(r, 500, "out of memory");
        return;
    }
    raddino_store_cluster_run run;
    int found = 0;
    raddino_store *db = read_lock(s);
    raddino_status st = raddino_store_get_cluster_run(db, 0, &run, &found);
    if (!st.code && !found) fputs("{\"run\": null, \"clusters\": []}\n", o.f);
    if (!st.code && found) {
        fprintf(o.f,
                "{\"run\": {\"id\": %lld, \"created\": %.0f, \"k\": %d, \"n\": %lld, "
                "\"generation\": %lld, \"silhouette\": ",
                (long long)run.id, run.created, run.k, (long long)run.n,
                (long long)run.generation);
        if (isnan(run.silhouette)) fputs("null", o.f);
        else fprintf(o.f, "%.6f", run.silhouette);
        fputs("}, \"clusters\": [", o.f);
        cluster_walk w = {o.f, -1, 0, 0};
        st = raddino_store_foreach_assignment(db, run.id, on_assignment, &w);
        end_cluster(&w);
        fputs("]}\n", o.f);
    }
    read_unlock(s);
    if (st.code) {
        fclose(o.f);
        free(o.buf);
        status_error(r, 500, &st);
        return;
    }
    json_finish(&o, r, 200);
}

/* ---- one image ---------------------------------------------------------------------------- */

static void write_dicom(FILE *f, const raddino_dicom_info *d)
{
    const char *keys[] = {"sop_instance_uid", "study_instance_uid", "series_instance_uid",
                          "modality", "view_position", "body_part_examined"};
    const char *values[] = {d->sop_instance_uid, d->study_instance_uid, d->series_instance_uid,
                            d->modality, d->view_position, d->body_part_examined};
    fputs(", \"dicom\": {", f);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        fprintf(f, "%s\"%s\": ", i ? ", " : "", keys[i]);
        cli_json_string(f, values[i]);
    }
    fprintf(f, ", \"rows\": %d, \"columns\": %d, \"frames\": %d}", d->rows, d->columns,
            d->frames);
}

void serve_image_info(serve_state *s, int64_t id, serve_reply *r)
{
    json_out o;
    if (!json_open(&o)) {
        serve_error(r, 500, "out of memory");
        return;
    }
    raddino_store_image img;
    raddino_dicom_info d;
    int found = 0, has_dicom = 0;
    raddino_store *db = read_lock(s);
    raddino_status st = raddino_store_find_id(db, id, NULL, &img, &found);
    if (!st.code && found) {
        fprintf(o.f, "{\"id\": %lld, \"path\": ", (long long)img.id);
        cli_json_string(o.f, img.path);
        fprintf(o.f, ", \"size\": %lld, \"width\": %d, \"height\": %d, \"format\": ",
                (long long)img.size, img.width, img.height);
        cli_json_string(o.f, img.format ? img.format : "");
        fprintf(o.f, ", \"status\": \"%s\", \"reason\": ",
                img.status == RADDINO_IMAGE_OK ? "ok" : "failed");
        if (img.reason) cli_json_string(o.f, img.reason);
        else fputs("null", o.f);
        fputs(", \"sha256\": ", o.f);
        cli_json_string(o.f, img.sha256);
        fprintf(o.f, ", \"has_vector\": %s", img.has_vector ? "true" : "false");
        st = raddino_store_get_dicom(db, id, &d, &has_dicom);
        if (!st.code && has_dicom) write_dicom(o.f, &d);
        fputs("}\n", o.f);
    }
    read_unlock(s);
    if (st.code || !found) {
        fclose(o.f);
        free(o.buf);
        if (st.code) status_error(r, 500, &st);
        else serve_error(r, 404, "no such image");
        return;
    }
    json_finish(&o, r, 200);
}

/* ---- thumbnails --------------------------------------------------------------------------- */

/* Box filter down to fit max_side (never up): each output pixel averages its source cell. */
static uint8_t *shrink(const raddino_image *img, int max_side, int *w_out, int *h_out)
{
    int w = img->width, h = img->height;
    double scale = (double)max_side / (w > h ? w : h);
    if (scale > 1.0) scale = 1.0;
    int tw = (int)(w * scale + 0.5), th = (int)(h * scale + 0.5);
    if (tw < 1) tw = 1;
    if (th < 1) th = 1;
    uint8_t *out = malloc((size_t)tw * th * 3);
    if (!out) return NULL;
    for (int y = 0; y < th; y++) {
        int y0 = (int)((int64_t)y * h / th), y1 = (int)((int64_t)(y + 1) * h / th);
        if (y1 <= y0) y1 = y0 + 1;
        for (int x = 0; x < tw; x++) {
            int x0 = (int)((int64_t)x * w / tw), x1 = (int)((int64_t)(x + 1) * w / tw);
            if (x1 <= x0) x1 = x0 + 1;
            uint64_t sum[3] = {0, 0, 0};
            for (int yy = y0; yy < y1; yy++)
                for (int xx = x0; xx < x1; xx++)
                    for (int c = 0; c < 3; c++)
                        sum[c] += img->rgb[((size_t)yy * w + xx) * 3 + c];
            uint64_t n = (uint64_t)(y1 - y0) * (uint64_t)(x1 - x0);
            for (int c = 0; c < 3; c++)
                out[((size_t)y * tw + x) * 3 + c] = (uint8_t)((sum[c] + n / 2) / n);
        }
    }
    *w_out = tw;
    *h_out = th;
    return out;
}

typedef struct {
    char *buf;
    size_t size, cap;
    int failed;
} mem_writer;

static void write_to_memory(void *user, void *data, int size)
{
    mem_writer *m = user;
    if (m->failed || size <= 0) return;
    if (m->size + (size_t)size > m->cap) {
        size_t cap = (m->cap ? m->cap * 2 : 65536) + (size_t)size;
        char *grown = realloc(m->buf, cap);
        if (!grown) {
            m->failed = 1;
            return;
        }
        m->buf = grown;
        m->cap = cap;
    }
    memcpy(m->buf + m->size, data, (size_t)size);
    m->size += (size_t)size;
}

/* Encoded thumbnails by (file sha256, size), least recently used dropped past max_bytes. The
 * key is the content of the file the store describes, so a file replaced on disk can never be
 * shown under its old id: a cached thumbnail is used only while the file still has that
 * content (its size and mtime as stored, else it is hashed again). */
typedef struct thumb_entry {
    struct thumb_entry *prev, *next;
    char sha256[65];
    int side;
    char *png;
    size_t size;
} thumb_entry;

struct serve_thumb_cache {
    pthread_mutex_t lock;
    thumb_entry *head, *tail;   /* most recently used first */
    size_t bytes, max_bytes;
};

serve_thumb_cache *serve_thumb_cache_new(size_t max_bytes)
{
    serve_thumb_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->lock, NULL);
    c->max_bytes = max_bytes;
    return c;
}

void serve_thumb_cache_free(serve_thumb_cache *c)
{
    if (!c) return;
    for (thumb_entry *e = c->head, *next; e; e = next) {
        next = e->next;
        free(e->png);
        free(e);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static void cache_unlink(serve_thumb_cache *c, thumb_entry *e)
{
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void cache_push_front(serve_thumb_cache *c, thumb_entry *e)
{
    e->next = c->head;
    e->prev = NULL;
    if (c->head) c->head->prev = e;
    else c->tail = e;
    c->head = e;
}

/* A copy of the cached PNG, or NULL. */
static char *cache_get(serve_thumb_cache *c, const char *sha256, int side, size_t *size)
{
    char *copy = NULL;
    pthread_mutex_lock(&c->lock);
    for (thumb_entry *e = c->head; e; e = e->next)
        if (e->side == side && !strcmp(e->sha256, sha256)) {
            cache_unlink(c, e);
            cache_push_front(c, e);
            copy = malloc(e->size);
            if (copy) memcpy(copy, e->png, e->size), *size = e->size;
            break;
        }
    pthread_mutex_unlock(&c->lock);
    return copy;
}

static void cache_put(serve_thumb_cache *c, const char *sha256, int side, const char *png,
                      size_t size)
{
    if (size > c->max_bytes / 4) return;
    thumb_entry *e = calloc(1, sizeof *e);
    char *copy = malloc(size);
    if (!e || !copy) {
        free(e);
        free(copy);
        return;
    }
    memcpy(copy, png, size);
    snprintf(e->sha256, sizeof e->sha256, "%s", sha256);
    e->side = side;
    e->png = copy;
    e->size = size;
    pthread_mutex_lock(&c->lock);
    for (thumb_entry *o = c->head; o; o = o->next)
        if (o->side == side && !strcmp(o->sha256, sha256)) {   /* another thread was first */
            pthread_mutex_unlock(&c->lock);
            free(copy);
            free(e);
            return;
        }
    cache_push_front(c, e);
    c->bytes += size;
    while (c->bytes > c->max_bytes && c->tail) {
        thumb_entry *old = c->tail;
        cache_unlink(c, old);
        c->bytes -= old->size;
        free(old->png);
        free(old);
    }
    pthread_mutex_unlock(&c->lock);
}

static void hex_sha256(const void *data, size_t size, char hex[65])
{
    unsigned char d[32];
    unsigned len = 0;
    hex[0] = 0;
    if (!EVP_Digest(data, size, d, &len, EVP_sha256(), NULL) || len != 32) return;
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* Reads a whole stored file (at most 2 GiB). */
static int read_file(const char *path, char **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *grown = cap < ((size_t)1 << 31) ? realloc(buf, cap * 2) : NULL;
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    int ok = buf && !ferror(f);
    fclose(f);
    if (!ok) {
        free(buf);
        return 0;
    }
    *data = buf;
    *size = n;
    return 1;
}

static int etag_matches(const char *if_none_match, const char *etag)
{
    return if_none_match && (strstr(if_none_match, etag) || !strcmp(if_none_match, "*"));
}

void serve_thumbnail(serve_state *s, int64_t id, int max_side, const char *if_none_match,
                     serve_reply *r)
{
    raddino_store_image img;
    int found = 0;
    char path[RADDINO_PATH_MAX], sha256[65] = "";
    int64_t size = 0, mtime_ns = 0;
    raddino_status st = raddino_store_find_id(read_lock(s), id, NULL, &img, &found);
    if (!st.code && found) {
        snprintf(path, sizeof path, "%s", img.path);
        snprintf(sha256, sizeof sha256, "%s", img.sha256);
        size = img.size;
        mtime_ns = img.mtime_ns;
    }
    read_unlock(s);
    if (st.code) {
        status_error(r, 500, &st);
        return;
    }
    if (!found) {
        serve_error(r, 404, "no such image");
        return;
    }
    static const char changed[] =
        "the file has changed since it was indexed (run raddino index again)";
    char etag[96];
    snprintf(etag, sizeof etag, "\"%.64s-%d\"", sha256, max_side);
    /* The file as stored (size and mtime): its content is the stored sha256, as `raddino
     * index` itself assumes. Otherwise it is read and hashed below before anything is shown. */
    struct stat fs;
    int same_file = sha256[0] && stat(path, &fs) == 0 && (int64_t)fs.st_size == size &&
                    (int64_t)fs.st_mtim.tv_sec * 1000000000 + fs.st_mtim.tv_nsec == mtime_ns;
    if (same_file) {
        if (etag_matches(if_none_match, etag)) {
            r->status = 304;
            r->content_type = "image/png";
            r->body = NULL;
            r->size = 0;
            snprintf(r->etag, sizeof r->etag, "%s", etag);
            return;
        }
        size_t n = 0;
        char *png = cache_get(s->thumbs, sha256, max_side, &n);
        if (png) {
            r->status = 200;
            r->content_type = "image/png";
            r->body = png;
            r->size = n;
            snprintf(r->etag, sizeof r->etag, "%s", etag);
            return;
        }
    }
    /* The bytes decoded are the bytes hashed: a file replaced meanwhile cannot slip in. */
    char *data = NULL;
    size_t data_size = 0;
    if (!read_file(path, &data, &data_size)) {
        serve_error(r, 422, "the file cannot be read");
        return;
    }
    char actual[65];
    hex_sha256(data, data_size, actual);
    if (!sha256[0] || strcmp(actual, sha256) != 0) {
        free(data);
        serve_error(r, 409, changed);
        return;
    }
    raddino_image pixels;
    st = raddino_image_load_memory_ex(data, data_size, path, &s->load, &pixels);
    free(data);
    if (st.code) {
        serve_error(r, 422, st.message);
        return;
    }
    int tw, th;
    uint8_t *small = shrink(&pixels, max_side, &tw, &th);
    raddino_image_free(&pixels);
    mem_writer m = {NULL, 0, 0, 0};
    if (!small || !stbi_write_png_to_func(write_to_memory, &m, tw, th, 3, small, tw * 3) ||
        m.failed) {
        free(small);
        free(m.buf);
        serve_error(r, 500, "thumbnail could not be encoded");
        return;
    }
    free(small);
    cache_put(s->thumbs, sha256, max_side, m.buf, m.size);
    r->status = 200;
    r->content_type = "image/png";
    r->body = m.buf;
    r->size = m.size;
    snprintf(r->etag, sizeof r->etag, "%s", etag);
}

/* ---- search ------------------------------------------------------------------------------- */

typedef struct {
    int64_t id;         /* -1: an uploaded image, QUERY_VECTOR: a vector in the body */
    int k;
    int exclude_self;
    int width, height;  /* of an upload */
    const char *format;
    char sha256[65];    /* of an upload's bytes (exclude_self) */
} search_query;

#define QUERY_VECTOR (-2)

/* A JSON number that is an integer in [lo, hi]. */
static int json_int(const cJSON *v, double lo, double hi)
{
    return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble <= hi &&
           v->valuedouble == floor(v->valuedouble);
}

/* {"vector": [dim numbers], "k": K}: the vector into `vector` (dim floats). */
static const char *parse_json_vector(const cJSON *root, const cJSON *v, int dim, float *vector,
                                     search_query *q)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "k");
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != dim)
        return "\"vector\" must be an array of as many numbers as the collection's vectors have";
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, v) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > 3e38)
            return "\"vector\" holds something other than a finite number";
        vector[i++] = (float)x->valuedouble;
    }
    if (k && !json_int(k, 1, SERVE_MAX_K)) return "k must be an integer from 1 to 1000";
    if (k) q->k = (int)k->valuedouble;
    q->id = QUERY_VECTOR;
    return NULL;
}

/* {"id": N, "k": K, "exclude_self": bool} or {"vector": [...], "k": K}, nothing after it but
 * white space: fills q (and vector) or says why not. One member per line below, so a new kind
 * of query is one more block. */
static const char *parse_json_query(const char *body, size_t size, search_query *q, int dim,
                                    float *vector)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, size, &end, 0);
    const char *why = NULL;
    const cJSON *vec = root ? cJSON_GetObjectItemCaseSensitive(root, "vector") : NULL;
    if (!root || !cJSON_IsObject(root)) {
        why = "body is not a JSON object";
    } else {
        for (const char *p = end; p && p < body + size && !why; p++)
            if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n' && *p != 0)
                why = "body has more after the JSON object";
    }
    if (why || !root) {
    } else if (vec) {
        why = parse_json_vector(root, vec, dim, vector, q);
    } else {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "k");
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "exclude_self");
        if (why) {
        } else if (!json_int(id, 1, 9e15))
            why = "\"id\" must be a positive integer";
        else if (k && !json_int(k, 1, SERVE_MAX_K))
            why = "k must be an integer from 1 to 1000";
        else if (ex && !cJSON_IsBool(ex))
            why = "exclude_self must be true or false";
        else {
            q->id = (int64_t)id->valuedouble;
            if (k) q->k = (int)k->valuedouble;
            if (ex) q->exclude_self = cJSON_IsTrue(ex);
        }
    }
    cJSON_Delete(root);
    return why;
}

/* Waits for a decode slot (at most SERVE_MAX_DECODES decode at once; the rest wait in line,
 * and leave it when their client goes away). 1: a slot is held; 0: answered already. */
static int take_decode_slot(serve_state *s, const serve_search_request *rq, serve_reply *r)
{
    pthread_mutex_lock(&s->decode_lock);
    if (s->decoding >= SERVE_MAX_DECODES && s->waiting >= 4 * SERVE_MAX_DECODES) {
        s->uploads_refused++;
        pthread_mutex_unlock(&s->decode_lock);
        serve_error(r, 503, "too many uploads at once: try again shortly");
        return 0;
    }
    s->waiting++;
    while (s->decoding >= SERVE_MAX_DECODES) {
        if (rq->client_gone && rq->client_gone(rq->client_gone_user)) {
            s->waiting--;
            s->uploads_cancelled++;
            pthread_mutex_unlock(&s->decode_lock);
            serve_error(r, 400, "the client went away");
            return 0;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100000000;
        if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&s->decode_cond, &s->decode_lock, &until);
    }
    s->waiting--;
    s->decoding++;
    pthread_mutex_unlock(&s->decode_lock);
    return 1;
}

static void give_decode_slot(serve_state *s, int cancelled)
{
    pthread_mutex_lock(&s->decode_lock);
    s->decoding--;
    if (cancelled) s->uploads_cancelled++;
    pthread_cond_signal(&s->decode_cond);
    pthread_mutex_unlock(&s->decode_lock);
}

/* Decodes (in a slot, with the upload caps, stopping if the client goes away) and embeds an
 * upload; the encoder is shared, so its pass is serialised. */
static int embed_upload(serve_state *s, const serve_search_request *rq, search_query *q,
                        float *vector, serve_reply *r)
{
    if (!s->encoder) {
        serve_error(r, 503, s->model_error);
        return 0;
    }
    if (!take_decode_slot(s, rq, r)) return 0;
    raddino_load_options opts = s->upload;
    opts.cancel = rq->client_gone;
    opts.cancel_user = rq->client_gone_user;
    raddino_image img;
    raddino_status st = raddino_image_load_memory_ex(rq->body, rq->size, "upload", &opts, &img);
    give_decode_slot(s, st.code == RADDINO_ERR_CANCELLED);
    if (st.code) {
        serve_error(r, st.code == RADDINO_ERR_NOMEM ? 500
                       : st.code == RADDINO_ERR_TOO_LARGE ? 413 : 400,
                    st.message);
        return 0;
    }
    if (q->exclude_self) hex_sha256(rq->body, rq->size, q->sha256);
    q->width = img.width;
    q->height = img.height;
    q->format = img.format;
    pthread_mutex_lock(&s->encoder_lock);
    st = raddino_embed_image(s->encoder, &img, vector, NULL);
    pthread_mutex_unlock(&s->encoder_lock);
    raddino_image_free(&img);
    if (st.code) {
        serve_error(r, 400, st.message);
        return 0;
    }
    return 1;
}

static void write_hits(int dim, FILE *f, const search_query *q, const raddino_collection_row *hits)
{
    if (q->id >= 0) {
        fprintf(f, "{\"query\": {\"id\": %lld}", (long long)q->id);
    } else if (q->id == QUERY_VECTOR) {
        fprintf(f, "{\"query\": {\"vector\": true, \"dim\": %d}", dim);
    } else {
        fprintf(f, "{\"query\": {\"upload\": true, \"width\": %d, \"height\": %d, \"format\": ",
                q->width, q->height);
        cli_json_string(f, q->format ? q->format : "");
        fputc('}', f);
    }
    fprintf(f, ", \"k\": %d, \"exclude_self\": %s, \"results\": [", q->k,
            q->exclude_self ? "true" : "false");
    for (int i = 0; i < q->k && hits[i].id >= 0; i++) {
        fprintf(f, "%s{\"rank\": %d, \"score\": %.6f, \"id\": %lld, \"path\": ", i ? ", " : "",
                i + 1, hits[i].score, (long long)hits[i].id);
        cli_json_string(f, hits[i].path);
        fputc('}', f);
    }
    fputs("]}\n", f);
}

/* The query through the search queue (answered with the queries that arrive together); o is
 * the open reply stream, closed here when the reply is made from it. */
static void search_queued(serve_state *s, search_query *q, float *vector, json_out *o,
                          serve_reply *r)
{
    int found = 1;
    raddino_status st = raddino_status_ok();
    if (q->id >= 0) {
        raddino_store_image img;
        read_lock(s);
        st = raddino_collection_vector(s->collection, q->id, vector, &img, &found);
        read_unlock(s);
    }
    raddino_search_request rq = {vector, q->k, -2.0f, q->exclude_self ? q->id : -1,
                                 q->exclude_self && q->sha256[0] ? q->sha256 : NULL,
                                 raddino_status_ok(), NULL};
    if (!st.code && found) st = raddino_search_queue_search(s->queue, &rq);
    if (!st.code && found) write_hits(s->dim, o->f, q, rq.rows);
    raddino_collection_rows_free(rq.rows, rq.rows ? (size_t)q->k : 0);
    if (st.code) status_error(r, 500, &st);
    else if (!found) serve_error(r, 404, "no such image with a vector");
    else {
        json_finish(o, r, 200);
        o->f = NULL;
    }
}

void serve_search(serve_state *s, const serve_search_request *rq, serve_reply *r)
{
    search_query q;
    memset(&q, 0, sizeof q);
    q.id = -1;
    q.k = rq->k;
    q.exclude_self = rq->exclude_self;
    if (s->dim <= 0) {
        serve_error(r, 404, "the collection has no vectors");
        return;
    }
    if (!rq->size) {
        serve_error(r, 400, "empty body: send an image or {\"id\": N}");
        return;
    }
    float *vector = malloc((size_t)s->dim * sizeof *vector);
    raddino_collection_row *hits = NULL;
    json_out o = {NULL, NULL, 0};
    if (rq->is_json && vector) {
        const char *why = parse_json_query(rq->body, rq->size, &q, s->dim, vector);
        if (why) {
            serve_error(r, 400, why);
            goto done;
        }
    }
    if (!vector || !json_open(&o)) {
        serve_error(r, 500, "out of memory");
        goto done;
    }
    if (q.id == -1 && !embed_upload(s, rq, &q, vector, r)) goto done;
    if (s->queue) {
        search_queued(s, &q, vector, &o, r);
        goto done;
    }
    read_lock(s);
    int found = 1;
    raddino_status st = {RADDINO_OK, ""};
    if (q.id >= 0) {
        raddino_store_image img;
        st = raddino_collection_vector(s->collection, q.id, vector, &img, &found);
    }
    int64_t self = q.exclude_self ? q.id : -1;
    const char *const self_sha[1] = {q.sha256};
    if (!st.code && found)
        st = raddino_collection_search_rows(s->collection, vector, 1, q.k, -2.0f, &self,
                                            q.exclude_self && q.sha256[0] ? self_sha : NULL,
                                            &hits);
    if (!st.code && found) write_hits(s->dim, o.f, &q, hits);
    read_unlock(s);
    if (st.code) status_error(r, 500, &st);
    else if (!found) serve_error(r, 404, "no such image with a vector");
    else {
        json_finish(&o, r, 200);
        o.f = NULL;
    }
done:
    if (o.f) {
        fclose(o.f);
        free(o.buf);
    }
    free(vector);
    raddino_collection_rows_free(hits, hits ? (size_t)q.k : 0);
}
