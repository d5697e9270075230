/* serve.h — private to raddino serve: the state shared by every request and the JSON API.
 *
 * Threads: libmicrohttpd runs one thread per connection. The collection (a store read snapshot
 * and its FAISS index, one thread at a time) sits behind collection_lock; the encoder (one
 * forward pass at a time) behind encoder_lock. A request never holds both: an upload is decoded
 * with no lock, embedded under encoder_lock, then searched under collection_lock. The server
 * answers from the snapshot taken at start: restart it to see images indexed since. */
#ifndef RADDINO_CLI_SERVE_H
#define RADDINO_CLI_SERVE_H

#include "collection.h"

#include <pthread.h>
#include <stddef.h>

#define SERVE_DEFAULT_MAX_UPLOAD (64u << 20)
#define SERVE_MAX_K 1000
#define SERVE_THUMB_DEFAULT 256
#define SERVE_THUMB_MAX 1024
#define SERVE_CLUSTER_EXEMPLARS 24

typedef struct {
    raddino_collection *collection;
    pthread_mutex_t collection_lock;
    raddino_encoder *encoder;
    pthread_mutex_t encoder_lock;
    raddino_load_options load;      /* --max-pixels, --window: as `raddino index` decodes */
    int dim;
    size_t max_upload;
    const char *token;              /* NULL: no token required */
} serve_state;

/* A finished answer: status, content type and a malloc'd body (owned by the caller). */
typedef struct {
    unsigned status;
    const char *content_type;
    char *body;
    size_t size;
} serve_reply;

/* {"error": MESSAGE} with the status. */
void serve_error(serve_reply *r, unsigned status, const char *message);

void serve_stats(serve_state *s, serve_reply *r);
void serve_clusters(serve_state *s, serve_reply *r);
void serve_image_info(serve_state *s, int64_t id, serve_reply *r);
void serve_thumbnail(serve_state *s, int64_t id, int max_side, serve_reply *r);
/* body: JSON ({"id": N, "k": K, "exclude_self": true}) when is_json, else image bytes; k: the
 * default number of results (the URL's ?k=), which a JSON "k" overrides. */
void serve_search(serve_state *s, const char *body, size_t size, int is_json, int k,
                  serve_reply *r);

#endif
