/* search_queue.c — concurrent queries gathered into batches (raddino_search_queue,
 * raddino_collection.h).
 *
 * Group commit rather than a timed wait: the first caller to find no batch running runs one
 * with everything queued so far (up to max_batch); the others wait on a condition variable and,
 * when that batch ends, one of them runs the next with what arrived meanwhile. A query alone is
 * searched at once, and under load a batch gathers the queries that arrived during the previous
 * one, so the wait is bounded by one batch's time and no timer is involved. */
#include "raddino_collection.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct node {
    raddino_search_request *r;
    struct node *next;
    int done;
} node;

struct raddino_search_queue {
    raddino_collection *c;
    raddino_search_queue_params p;
    int dim;
    pthread_mutex_t lock;
    pthread_cond_t finished;    /* a batch ended */
    node *head, *tail;          /* queued, not yet taken */
    int pending;
    int running;                /* a batch is being searched */
    long long batches, queries;
    int largest;
};

static raddino_status queue_error(int code, const char *message)
{
    return raddino_status_error(code, "%s", message);
}

raddino_status raddino_search_queue_new(raddino_collection *c,
                                        const raddino_search_queue_params *params,
                                        raddino_search_queue **out)
{
    if (!out) return queue_error(RADDINO_ERR_ARGUMENT, "search queue: no output");
    *out = NULL;
    raddino_search_queue_params p = {0};
    if (params) p = *params;
    if (!c || p.max_batch < 0 || p.max_batch > 1024 || (!p.lock != !p.unlock))
        return queue_error(RADDINO_ERR_ARGUMENT, "search queue: bad arguments");
    if (p.max_batch == 0) p.max_batch = RADDINO_SEARCH_QUEUE_MAX_BATCH;
    raddino_search_queue *q = calloc(1, sizeof *q);
    if (!q) return queue_error(RADDINO_ERR_NOMEM, "out of memory");
    raddino_collection_info info;
    raddino_collection_get_info(c, &info);
    q->c = c;
    q->p = p;
    q->dim = info.dim;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->finished, NULL);
    *out = q;
    return raddino_status_ok();
}

void raddino_search_queue_free(raddino_search_queue *q)
{
    if (!q) return;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->finished);
    free(q);
}

void raddino_search_queue_get_stats(raddino_search_queue *q, raddino_search_queue_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!q) return;
    pthread_mutex_lock(&q->lock);
    out->batches = q->batches;
    out->queries = q->queries;
    out->largest = q->largest;
    out->pending = q->pending;
    out->max_batch = q->p.max_batch;
    pthread_mutex_unlock(&q->lock);
}

/* Searches the queries of one group (same k and min_score) in one call and hands each its rows. */
static void run_group(raddino_search_queue *q, raddino_search_request **g, size_t n)
{
    int k = g[0]->k, dim = q->dim;
    float *vectors = malloc(n * (size_t)dim * sizeof *vectors);
    int64_t *self = malloc(n * sizeof *self);
    const char **sha = malloc(n * sizeof *sha);
    raddino_collection_row *rows = NULL;
    raddino_status st = vectors && self && sha ? raddino_status_ok()
                                               : queue_error(RADDINO_ERR_NOMEM, "out of memory");
    int any_sha = 0;
    for (size_t i = 0; i < n && !st.code; i++) {
        memcpy(vectors + i * (size_t)dim, g[i]->vector, (size_t)dim * sizeof *vectors);
        self[i] = g[i]->exclude_id;
        sha[i] = g[i]->exclude_sha256;
        any_sha |= sha[i] != NULL;
    }
    if (!st.code)
        st = raddino_collection_search_rows_batch(q->c, vectors, n, k, g[0]->min_score, self,
                                                  any_sha ? sha : NULL, &rows);
    /* A failed batch fails each of its queries with the batch's reason. */
    for (size_t i = 0; i < n; i++) {
        g[i]->status = st;
        g[i]->rows = NULL;
        if (st.code) continue;
        g[i]->rows = malloc((size_t)k * sizeof *rows);
        if (!g[i]->rows) {
            g[i]->status = queue_error(RADDINO_ERR_NOMEM, "out of memory");
            continue;
        }
        memcpy(g[i]->rows, rows + i * (size_t)k, (size_t)k * sizeof *rows);
        memset(rows + i * (size_t)k, 0, (size_t)k * sizeof *rows);     /* paths moved */
    }
    raddino_collection_rows_free(rows, rows ? n * (size_t)k : 0);
    free(vectors);
    free(self);
    free(sha);
}

/* One batch: its queries grouped by (k, min_score), each group one search. */
static void run_batch(raddino_search_queue *q, raddino_search_request **b, size_t n)
{
    raddino_search_request **g = malloc(n * sizeof *g);
    char *taken = calloc(n, 1);
    if (!g || !taken) {
        for (size_t i = 0; i < n; i++) {
            b[i]->status = queue_error(RADDINO_ERR_NOMEM, "out of memory");
            b[i]->rows = NULL;
        }
        free(g);
        free(taken);
        return;
    }
    if (q->p.lock) q->p.lock(q->p.user);
    for (size_t i = 0; i < n; i++) {
        if (taken[i]) continue;
        size_t m = 0;
        for (size_t j = i; j < n; j++)
            if (!taken[j] && b[j]->k == b[i]->k && b[j]->min_score == b[i]->min_score) {
                taken[j] = 1;
                g[m++] = b[j];
            }
        run_group(q, g, m);
    }
    if (q->p.unlock) q->p.unlock(q->p.user);
    free(g);
    free(taken);
}

raddino_status raddino_search_queue_search(raddino_search_queue *q, raddino_search_request *r)
{
    if (!q || !r) return queue_error(RADDINO_ERR_ARGUMENT, "search queue: bad arguments");
    r->rows = NULL;
    if (!r->vector || r->k < 1 || r->k > 100000 || q->dim <= 0) {
        r->status = queue_error(RADDINO_ERR_ARGUMENT,
                                q->dim <= 0 ? "the collection has no vectors"
                                            : "search: k must be from 1 to 100000");
        return r->status;
    }
    node me = {r, NULL, 0};
    raddino_search_request *batch[1024];
    node *nodes[1024];
    pthread_mutex_lock(&q->lock);
    if (q->tail) q->tail->next = &me;
    else q->head = &me;
    q->tail = &me;
    q->pending++;
    while (!me.done) {
        if (q->running) {
            pthread_cond_wait(&q->finished, &q->lock);
            continue;
        }
        /* No batch running: this caller runs the next one, whoever's queries it holds. */
        size_t n = 0;
        while (q->head && n < (size_t)q->p.max_batch) {
            nodes[n] = q->head;
            batch[n++] = q->head->r;
            q->head = q->head->next;
        }
        if (!q->head) q->tail = NULL;
        q->pending -= (int)n;
        q->running = 1;
        pthread_mutex_unlock(&q->lock);
        run_batch(q, batch, n);
        pthread_mutex_lock(&q->lock);
        for (size_t i = 0; i < n; i++) nodes[i]->done = 1;
        q->running = 0;
        q->batches++;
        q->queries += (long long)n;
        if ((int)n > q->largest) q->largest = (int)n;
        pthread_cond_broadcast(&q->finished);
    }
    pthread_mutex_unlock(&q->lock);
    return r->status;
}
