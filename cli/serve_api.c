/* serve_api.c — the JSON API of raddino serve: stats, clusters, image rows, thumbnails and
 * search. Every answer is built in memory (open_memstream) and handed back as a serve_reply.
 * Image ids are the only way a request names an image: files are read from the paths the store
 * holds, never from anything a request says. */
#include "serve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    pthread_mutex_lock(&s->collection_lock);
    raddino_status rs = raddino_store_get_stats(raddino_collection_store(s->collection), &st);
    raddino_collection_get_info(s->collection, &info);
    pthread_mutex_unlock(&s->collection_lock);
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
    fputs("}\n", o.f);
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
    raddino_store *db = raddino_collection_store(s->collection);
    raddino_store_cluster_run run;
    int found = 0;
    pthread_mutex_lock(&s->collection_lock);
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
    pthread_mutex_unlock(&s->collection_lock);
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
    raddino_store *db = raddino_collection_store(s->collection);
    raddino_store_image img;
    raddino_dicom_info d;
    int found = 0, has_dicom = 0;
    pthread_mutex_lock(&s->collection_lock);
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
    pthread_mutex_unlock(&s->collection_lock);
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

void serve_thumbnail(serve_state *s, int64_t id, int max_side, serve_reply *r)
{
    raddino_store_image img;
    int found = 0;
    char path[RADDINO_PATH_MAX];
    pthread_mutex_lock(&s->collection_lock);
    raddino_status st = raddino_store_find_id(raddino_collection_store(s->collection), id, NULL,
                                              &img, &found);
    if (!st.code && found) snprintf(path, sizeof path, "%s", img.path);
    pthread_mutex_unlock(&s->collection_lock);
    if (st.code) {
        status_error(r, 500, &st);
        return;
    }
    if (!found) {
        serve_error(r, 404, "no such image");
        return;
    }
    raddino_image pixels;
    st = raddino_image_load_ex(path, &s->load, &pixels);   /* a stored path only */
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
    r->status = 200;
    r->content_type = "image/png";
    r->body = m.buf;
    r->size = m.size;
}

/* ---- search ------------------------------------------------------------------------------- */

typedef struct {
    int64_t id;         /* -1: an uploaded image, QUERY_VECTOR: a vector in the body */
    int k;
    int exclude_self;
    int width, height;  /* of an upload */
    const char *format;
} search_query;

#define QUERY_VECTOR (-2)

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
    if (k && (!cJSON_IsNumber(k) || !(k->valuedouble >= 1 && k->valuedouble <= SERVE_MAX_K) ||
              k->valuedouble != floor(k->valuedouble)))
        return "\"k\" must be an integer from 1 to 1000";
    if (k) q->k = (int)k->valuedouble;
    q->id = QUERY_VECTOR;
    return NULL;
}

/* {"id": N, "k": K, "exclude_self": bool} or {"vector": [...], "k": K}: fills q (and vector)
 * or says why not. */
static const char *parse_json_query(const char *body, size_t size, search_query *q, int dim,
                                    float *vector)
{
    cJSON *root = cJSON_ParseWithLength(body, size);
    const char *why = NULL;
    const cJSON *vec = root ? cJSON_GetObjectItemCaseSensitive(root, "vector") : NULL;
    if (!root || !cJSON_IsObject(root)) {
        why = "body is not a JSON object";
    } else if (vec) {
        why = parse_json_vector(root, vec, dim, vector, q);
    } else {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "k");
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "exclude_self");
        if (!cJSON_IsNumber(id) || !(id->valuedouble >= 1 && id->valuedouble <= 9e15) ||
            id->valuedouble != floor(id->valuedouble))
            why = "\"id\" must be a positive integer";
        else if (k && (!cJSON_IsNumber(k) || !(k->valuedouble >= 1 &&
                                               k->valuedouble <= SERVE_MAX_K) ||
                       k->valuedouble != floor(k->valuedouble)))
            why = "\"k\" must be an integer from 1 to 1000";
        else if (ex && !cJSON_IsBool(ex))
            why = "\"exclude_self\" must be true or false";
        else {
            q->id = (int64_t)id->valuedouble;
            if (k) q->k = (int)k->valuedouble;
            q->exclude_self = ex && cJSON_IsTrue(ex);
        }
    }
    cJSON_Delete(root);
    return why;
}

/* Decodes and embeds an upload; the encoder is shared, so its pass is serialised. */
static int embed_upload(serve_state *s, const char *body, size_t size, search_query *q,
                        float *vector, serve_reply *r)
{
    raddino_image img;
    raddino_status st = raddino_image_load_memory_ex(body, size, "upload", &s->load, &img);
    if (st.code) {
        serve_error(r, st.code == RADDINO_ERR_NOMEM ? 500 : 400, st.message);
        return 0;
    }
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

static void write_hits(serve_state *s, FILE *f, const search_query *q, const float *scores,
                       const int64_t *ids)
{
    raddino_store *db = raddino_collection_store(s->collection);
    if (q->id >= 0) {
        fprintf(f, "{\"query\": {\"id\": %lld}", (long long)q->id);
    } else if (q->id == QUERY_VECTOR) {
        fprintf(f, "{\"query\": {\"vector\": true, \"dim\": %d}", s->dim);
    } else {
        fprintf(f, "{\"query\": {\"upload\": true, \"width\": %d, \"height\": %d, \"format\": ",
                q->width, q->height);
        cli_json_string(f, q->format ? q->format : "");
        fputc('}', f);
    }
    fprintf(f, ", \"k\": %d, \"results\": [", q->k);
    for (int i = 0; i < q->k && ids[i] >= 0; i++) {
        raddino_store_image img;
        int found = 0;
        raddino_status st = raddino_store_find_id(db, ids[i], NULL, &img, &found);
        fprintf(f, "%s{\"rank\": %d, \"score\": %.6f, \"id\": %lld, \"path\": ", i ? ", " : "",
                i + 1, scores[i], (long long)ids[i]);
        cli_json_string(f, !st.code && found ? img.path : "");
        fputc('}', f);
    }
    fputs("]}\n", f);
}

void serve_search(serve_state *s, const char *body, size_t size, int is_json, int k,
                  serve_reply *r)
{
    search_query q = {-1, k, 0, 0, 0, NULL};
    if (s->dim <= 0) {
        serve_error(r, 404, "the collection has no vectors");
        return;
    }
    if (!size) {
        serve_error(r, 400, "empty body: send an image or {\"id\": N}");
        return;
    }
    float *vector = malloc((size_t)s->dim * sizeof *vector);
    float *scores = NULL;
    int64_t *ids = NULL;
    json_out o = {NULL, NULL, 0};
    if (is_json && vector) {
        const char *why = parse_json_query(body, size, &q, s->dim, vector);
        if (why) {
            serve_error(r, 400, why);
            goto done;
        }
    }
    scores = malloc((size_t)q.k * sizeof *scores);
    ids = malloc((size_t)q.k * sizeof *ids);
    if (!vector || !scores || !ids || !json_open(&o)) {
        serve_error(r, 500, "out of memory");
        goto done;
    }
    if (q.id == -1 && !embed_upload(s, body, size, &q, vector, r)) goto done;
    pthread_mutex_lock(&s->collection_lock);
    int found = 1;
    raddino_status st = {RADDINO_OK, ""};
    if (q.id >= 0) {
        raddino_store_image img;
        st = raddino_collection_vector(s->collection, q.id, vector, &img, &found);
    }
    int64_t self = q.exclude_self ? q.id : -1;
    if (!st.code && found)
        st = raddino_collection_search(s->collection, vector, 1, q.k, -2.0f, &self, NULL,
                                       scores, ids);
    if (!st.code && found) write_hits(s, o.f, &q, scores, ids);
    pthread_mutex_unlock(&s->collection_lock);
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
    free(scores);
    free(ids);
}
