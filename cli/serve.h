/* serve.h — private to raddino serve: the state shared by every request and the JSON API.
 *
 * Threads: libmicrohttpd runs one thread per connection. The collection (the store and its
 * FAISS index, one thread at a time) sits behind collection_lock; the encoder (one forward pass
 * at a time) behind encoder_lock; uploads are decoded in at most max_decodes slots (the rest
 * wait, and give up when their client goes away). A request never holds two of these at once.
 *
 * The database is read in one short read transaction per request, never one for the server's
 * life: `raddino index` can then checkpoint (and so shrink) the WAL while the server runs. Image
 * rows are therefore current; searches use the index built (or loaded) at start. */
#ifndef RADDINO_CLI_SERVE_H
#define RADDINO_CLI_SERVE_H

#include "collection.h"

#include <pthread.h>
#include <stddef.h>

#define SERVE_DEFAULT_MAX_UPLOAD (64u << 20)
/* Uploads come from anyone who can reach the port, so their pixel cap is far below the
 * indexer's 200 MP (for trusted folders): 32 MP holds the largest radiographs (a 43 x 43 cm
 * detector at 76 um is 5600 x 5600 = 31.4 MP; chest X-rays are 4 to 18 MP) and bounds one
 * decode to about 9 bytes per pixel (16-bit RGB PNG) = 288 MB. */
#define SERVE_DEFAULT_UPLOAD_PIXELS 32000000ull
/* Progressive JPEG scans an upload may have: encoders write 6 (grey) to 10 (colour); each scan
 * costs a pass over every block, so a thousand-scan file costs a hundred times more. */
#define SERVE_DEFAULT_UPLOAD_SCANS 64u
/* Uploads decoded at once; the others wait in line (bounds memory to 2 decodes). */
#define SERVE_MAX_DECODES 2
/* A JSON search body ({"id": N, ...}, or {"vector": [...]}: 768 numbers fit in 20 KB) is small. */
#define SERVE_MAX_JSON (32u << 10)
#define SERVE_MAX_K 1000
#define SERVE_THUMB_DEFAULT 256
#define SERVE_THUMB_MAX 1024
#define SERVE_CLUSTER_EXEMPLARS 24
/* Encoded thumbnails kept in memory, keyed by the file's sha256 and size. */
#define SERVE_THUMB_CACHE_BYTES (32u << 20)

typedef struct serve_thumb_cache serve_thumb_cache;

typedef struct {
    raddino_collection *collection;
    pthread_mutex_t collection_lock;
    /* Searches that arrive together are answered in one batch (raddino_search_queue, which
     * takes collection_lock around each batch); NULL (--search-batch 0): one at a time. */
    raddino_search_queue *queue;
    raddino_encoder *encoder;       /* NULL: started without the model (browsing by id only) */
    char model_error[RADDINO_MESSAGE_MAX];  /* why there is no encoder */
    pthread_mutex_t encoder_lock;
    raddino_load_options load;      /* stored files (thumbnails): as `raddino index` decodes */
    raddino_load_options upload;    /* uploads: their own pixel cap and scan budget */
    int dim;
    size_t max_upload;
    const char *token;              /* NULL: no token required */
    /* Decode slots for uploads, and counters for /api/stats. */
    pthread_mutex_t decode_lock;
    pthread_cond_t decode_cond;
    int decoding, waiting;
    long long uploads_cancelled, uploads_refused;
    serve_thumb_cache *thumbs;
} serve_state;

/* A finished answer: status, content type and a malloc'd body (owned by the caller); etag
 * (when not empty) is sent with it. */
typedef struct {
    unsigned status;
    const char *content_type;
    char *body;
    size_t size;
    char etag[96];
} serve_reply;

/* One search request. The body is an image, or JSON when is_json; k and exclude_self come from
 * the query string or form fields (a JSON body's own "k"/"exclude_self" override them).
 * client_gone, when set, says whether the client has disconnected: an upload's decode stops
 * then. */
typedef struct {
    const char *body;
    size_t size;
    int is_json;
    int k;
    int exclude_self;
    int (*client_gone)(void *user);
    void *client_gone_user;
} serve_search_request;

/* {"error": MESSAGE} with the status. */
void serve_error(serve_reply *r, unsigned status, const char *message);

void serve_stats(serve_state *s, serve_reply *r);
void serve_clusters(serve_state *s, serve_reply *r);
void serve_image_info(serve_state *s, int64_t id, serve_reply *r);
/* PNG thumbnail; 304 when if_none_match (may be NULL) names the current ETag. */
void serve_thumbnail(serve_state *s, int64_t id, int max_side, const char *if_none_match,
                     serve_reply *r);
void serve_search(serve_state *s, const serve_search_request *q, serve_reply *r);
/* The search queue's lock and unlock (user: the serve_state): collection_lock and a read
 * transaction, as every other request takes them. */
void serve_queue_lock(void *state);
void serve_queue_unlock(void *state);

serve_thumb_cache *serve_thumb_cache_new(size_t max_bytes);
void serve_thumb_cache_free(serve_thumb_cache *c);

#endif
