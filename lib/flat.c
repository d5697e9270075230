/* flat.c — the flat entry points of raddino.h: the encoder, collection and k-means APIs with
 * scalar arguments and caller-owned arrays only, so that a binding (python/raddino, ctypes)
 * mirrors no struct of ours. Each is a few calls of the public APIs. */
#include "raddino.h"

#include "encoder_internal.h"   /* status_ok / status_error */

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void raddino_free(void *p) { free(p); }

raddino_status raddino_encoder_open_simple(const char *model_dir, int precision, int n_threads,
                                           raddino_encoder **out)
{
    if (!out) return status_error(RADDINO_ERR_ARGUMENT, "raddino_encoder_open_simple: NULL");
    *out = NULL;
    raddino_encoder_params p = raddino_encoder_default_params();
    p.precision = precision;
    p.n_threads = n_threads;
    if (model_dir && *model_dir) return raddino_encoder_open(model_dir, &p, out);
    const char *env = getenv("RADDINO_MODEL");
    if (env && *env) return raddino_encoder_open(env, &p, out);
    raddino_hub_model m;
    raddino_status st = raddino_hub_find(NULL, NULL, NULL, &m);
    if (st.code) return st;
    return raddino_encoder_open(m.model_dir, &p, out);
}

raddino_status raddino_encoder_shape(const raddino_encoder *enc, int *hidden, int *tokens,
                                     int *height, int *width, const char **kernel)
{
    if (!enc) return status_error(RADDINO_ERR_ARGUMENT, "raddino_encoder_shape: NULL");
    raddino_model_info info;
    raddino_status st = raddino_encoder_info(enc, &info);
    if (st.code) return st;
    if (hidden) *hidden = info.hidden;
    if (tokens) *tokens = info.tokens;
    if (height) *height = info.input_height;
    if (width) *width = info.input_width;
    if (kernel) *kernel = info.kernel;
    return st;
}

raddino_status raddino_embed_rgb(raddino_encoder *enc, const uint8_t *rgb, int width, int height,
                                 float *cls, float *tokens)
{
    if (!enc || !rgb) return status_error(RADDINO_ERR_ARGUMENT, "raddino_embed_rgb: NULL");
    if (width <= 0 || height <= 0)
        return status_error(RADDINO_ERR_ARGUMENT, "raddino_embed_rgb: size %dx%d", width, height);
    /* Read only: raddino_embed_image does not write the pixels, the cast drops const only. */
    raddino_image img = {.width = width, .height = height, .rgb = (uint8_t *)rgb, .source_bits = 8,
                         .source_channels = 3, .format = "rgb"};
    return raddino_embed_image(enc, &img, cls, tokens);
}

raddino_status raddino_preprocess_file(raddino_encoder *enc, const char *path, uint8_t *crop,
                                       float *pixels)
{
    if (!enc || !path) return status_error(RADDINO_ERR_ARGUMENT, "raddino_preprocess_file: NULL");
    raddino_load_options opts;
    memset(&opts, 0, sizeof opts);  /* the defaults raddino_encoder_open_simple's encoders use */
    raddino_image img;
    raddino_status st = raddino_image_load_ex(path, &opts, &img);
    if (st.code) return st;
    st = raddino_preprocess(enc, &img, crop, pixels);
    raddino_image_free(&img);
    if (st.code && !strstr(st.message, path)) return status_error(st.code, "%s: %s", path, st.message);
    return st;
}

raddino_status raddino_collection_open_simple(const char *db_path, raddino_collection **out)
{
    raddino_collection_params p = raddino_collection_default_params();
    return raddino_collection_open(db_path, &p, out);
}

raddino_status raddino_collection_shape(raddino_collection *c, int *dim, int64_t *vectors)
{
    if (!c) return status_error(RADDINO_ERR_ARGUMENT, "raddino_collection_shape: NULL");
    raddino_collection_info info;
    raddino_collection_get_info(c, &info);
    if (dim) *dim = info.dim;
    if (vectors) *vectors = info.vectors;
    return status_ok();
}

raddino_status raddino_collection_path(raddino_collection *c, int64_t id, char *path,
                                       size_t cap, int *found)
{
    if (!c || !path || !cap || !found)
        return status_error(RADDINO_ERR_ARGUMENT, "raddino_collection_path: NULL");
    raddino_store *db = raddino_collection_store(c);
    raddino_store_image img;
    path[0] = 0;
    raddino_status st = raddino_store_find_id(db, id, NULL, &img, found);
    if (st.code || !*found) return st;
    if (strlen(img.path) >= cap)
        return status_error(RADDINO_ERR_ARGUMENT, "%s: the path of image %lld does not fit in %zu "
                            "bytes", raddino_store_path(db), (long long)id, cap);
    memcpy(path, img.path, strlen(img.path) + 1);
    return st;
}

raddino_status raddino_collection_get_vector(raddino_collection *c, int64_t id, float *vector,
                                             int *found)
{
    raddino_store_image img;
    return raddino_collection_vector(c, id, vector, &img, found);
}

raddino_status raddino_collection_find(raddino_collection *c, const char *path, int64_t *id,
                                       int *found)
{
    if (!c || !path || !id || !found)
        return status_error(RADDINO_ERR_ARGUMENT, "raddino_collection_find: NULL");
    char norm[RADDINO_PATH_MAX];
    raddino_store_image img;
    *id = -1;
    raddino_status st = raddino_store_normalise_path(path, norm, sizeof norm);
    if (!st.code) st = raddino_store_find_path(raddino_collection_store(c), norm, &img, found);
    if (!st.code && *found) *id = img.id;
    return st;
}

/* Hex SHA-256 of a file: the weights' identity in the store's models table. */
raddino_status raddino_collection_check_encoder(raddino_collection *c, raddino_encoder *enc)
{
    if (!c || !enc) return status_error(RADDINO_ERR_ARGUMENT, "raddino_collection_check_encoder: NULL");
    raddino_model_identity id;
    raddino_status st = raddino_encoder_identity(enc, &id);
    raddino_store_model model = {id.weights_sha256, id.config_json, NULL, NULL, id.dim};
    if (!st.code) st = raddino_collection_check_model(c, &model);
    return st;
}

/* ---- statistics as JSON -------------------------------------------------------------------- */

#define MAX_REASONS 10

typedef struct {
    cJSON *list;
    int n;
    int ok;
} json_collector;

static void add_reason(void *user, const char *reason, int64_t count)
{
    json_collector *j = user;
    if (j->n++ >= MAX_REASONS || !j->ok) return;
    cJSON *o = cJSON_CreateObject();
    j->ok = o && cJSON_AddStringToObject(o, "reason", reason) &&
            cJSON_AddNumberToObject(o, "count", (double)count);
    if (o) cJSON_AddItemToArray(j->list, o);
}

static void add_modality(void *user, const char *modality, int64_t count)
{
    json_collector *j = user;
    if (j->ok) j->ok = cJSON_AddNumberToObject(j->list, modality, (double)count) != NULL;
}

static int add_number(cJSON *o, const char *name, double v)
{
    return cJSON_AddNumberToObject(o, name, v) != NULL;
}

static cJSON *counts_json(const raddino_store_stats *s)
{
    cJSON *r = cJSON_CreateObject();
    int ok = r && add_number(r, "id", (double)s->run_id) &&
             add_number(r, "started", s->run_started) &&
             (s->run_finished > 0 ? add_number(r, "finished", s->run_finished)
                                  : cJSON_AddNullToObject(r, "finished") != NULL) &&
             cJSON_AddStringToObject(r, "command", s->run_command) &&
             add_number(r, "added", (double)s->run_counts.added) &&
             add_number(r, "updated", (double)s->run_counts.updated) &&
             add_number(r, "reused", (double)s->run_counts.reused) &&
             add_number(r, "unchanged", (double)s->run_counts.unchanged) &&
             add_number(r, "failed", (double)s->run_counts.failed) &&
             add_number(r, "removed", (double)s->run_counts.removed) &&
             add_number(r, "encoder_seconds", s->run_encoder_seconds) &&
             add_number(r, "wall_seconds", s->run_wall_seconds);
    if (!ok) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

static cJSON *stats_json(raddino_store *db, const raddino_store_stats *s, raddino_status *st)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *models = cJSON_CreateArray();
    json_collector reasons = {cJSON_CreateArray(), 0, 1};
    json_collector modalities = {cJSON_CreateObject(), 0, 1};
    int ok = root && models && reasons.list && modalities.list &&
             cJSON_AddStringToObject(root, "database", raddino_store_path(db)) &&
             add_number(root, "schema", s->schema) &&
             add_number(root, "generation", (double)s->generation) &&
             add_number(root, "images", (double)s->images) && add_number(root, "ok", (double)s->ok) &&
             add_number(root, "failed", (double)s->failed) &&
             add_number(root, "vectors", (double)s->vectors) && add_number(root, "dim", s->dim);
    if (ok && s->model_id) {
        cJSON *m = cJSON_CreateObject();
        ok = m && add_number(m, "id", (double)s->model_id) &&
             cJSON_AddStringToObject(m, "weights_sha256", s->weights_sha256) &&
             (s->repository[0] ? cJSON_AddStringToObject(m, "repository", s->repository)
                               : cJSON_AddNullToObject(m, "repository")) &&
             (s->revision[0] ? cJSON_AddStringToObject(m, "revision", s->revision)
                             : cJSON_AddNullToObject(m, "revision")) &&
             add_number(m, "dim", s->dim) && add_number(m, "vectors", (double)s->vectors);
        if (m) cJSON_AddItemToArray(models, m);
    }
    if (ok) {
        cJSON_AddItemToObject(root, "models", models);
        models = NULL;
        ok = add_number(root, "dicom", (double)s->dicom);
    }
    if (ok) *st = raddino_store_dicom_modalities(db, add_modality, &modalities);
    if (ok && !st->code) {
        cJSON_AddItemToObject(root, "modalities", modalities.list);
        modalities.list = NULL;
        *st = raddino_store_failure_reasons(db, MAX_REASONS, add_reason, &reasons);
    }
    if (ok && !st->code) {
        cJSON_AddItemToObject(root, "failure_reasons", reasons.list);
        reasons.list = NULL;
        cJSON *run = s->run_id ? counts_json(s) : cJSON_CreateNull();
        ok = run != NULL;
        if (run) cJSON_AddItemToObject(root, "last_run", run);
    }
    ok = ok && reasons.ok && modalities.ok;
    cJSON_Delete(models);
    cJSON_Delete(reasons.list);
    cJSON_Delete(modalities.list);
    if (!st->code && !ok) *st = status_error(RADDINO_ERR_NOMEM, "statistics: out of memory");
    if (st->code) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

raddino_status raddino_collection_stats_json(raddino_collection *c, char *out, size_t cap)
{
    if (!c || !out || !cap)
        return status_error(RADDINO_ERR_ARGUMENT, "raddino_collection_stats_json: NULL");
    out[0] = 0;
    raddino_store *db = raddino_collection_store(c);
    raddino_store_stats s;
    raddino_status st = raddino_store_get_stats(db, &s);
    if (st.code) return st;
    cJSON *root = stats_json(db, &s, &st);
    if (!root) return st;
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return status_error(RADDINO_ERR_NOMEM, "statistics: out of memory");
    size_t len = strlen(text);
    if (len >= cap)
        st = status_error(RADDINO_ERR_ARGUMENT, "statistics: %zu bytes do not fit in %zu",
                          len + 1, cap);
    else
        memcpy(out, text, len + 1);
    cJSON_free(text);
    return st;
}

/* ---- k-means -------------------------------------------------------------------------------- */

raddino_status raddino_kmeans_simple(const float *vectors, size_t n, int dim, int k, uint64_t seed,
                                     int iterations, size_t sample, int n_threads,
                                     float *centroids, int32_t *assignment, float *distance,
                                     double *objective)
{
    raddino_kmeans_params p = raddino_kmeans_default_params();
    p.k = k;
    p.seed = seed;
    p.iterations = iterations;
    p.sample = sample;
    p.n_threads = n_threads;
    raddino_kmeans_result r;
    raddino_status st = raddino_kmeans(vectors, n, dim, &p, &r);
    if (st.code) return st;
    if (centroids) memcpy(centroids, r.centroids, (size_t)k * (size_t)dim * sizeof *centroids);
    if (assignment) memcpy(assignment, r.assignment, n * sizeof *assignment);
    if (distance) memcpy(distance, r.distance, n * sizeof *distance);
    if (objective) *objective = r.objective;
    raddino_kmeans_result_free(&r);
    return st;
}
