/* ingest_pipeline.c — decoder threads for `raddino index`: while the encoder (one thread, the
 * caller's) embeds image i, `jobs` threads read, hash, decode and preprocess images i+1 ...
 * i+window, so the encoder does not wait for the disk or the decoders.
 *
 * Items are handed out and consumed in order: slot i % window holds item i. A thread takes the
 * next item only when its slot is free, i.e. when fewer than `window` items are ahead of the
 * consumer. This bounds memory (window network inputs) and keeps runs deterministic.
 *
 * The threads call only raddino_dicom_read_info_memory, raddino_image_load_memory_ex and
 * raddino_preprocess, which read the encoder's configuration and never its scratch buffers
 * (see raddino_encoder.h), so they may run while the caller encodes. They do not use OpenMP: the encoder keeps its thread count.
 *
 * With `encode`, the threads are encoding workers instead: each decodes its item and encodes it
 * too, on one thread, with a raddino_encoder_worker of its own (the weights are shared). On a
 * machine with few cores this is what keeps every core busy: decoder threads beside an encoder
 * whose OpenMP team spans every core oversubscribe them, and each of the encoder's barriers
 * then waits for a team thread that a decoder has descheduled. The workers are the threads of
 * one OpenMP team, started from a thread of ours, so that the encoder's own OpenMP regions and
 * OpenBLAS run on one thread each (nested regions are inactive) while the caller's thread stays
 * free to write rows. Items still come out in order, so the rows and ids are those of the
 * other mode, and the vectors too (a worker's numbers are the encoder's, bit for bit). */
#include "ingest_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Files larger than this are not read (the image decoder has the same limit). */
#define INGEST_MAX_FILE_BYTES ((size_t)2 << 30)
/* Enough bytes to recognise every format raddino_image_sniff knows. */
#define SNIFF_BYTES RADDINO_SNIFF_BYTES

/* ---- hash set ---------------------------------------------------------------------------- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex_to_digest(const char *hex, uint8_t out[32])
{
    if (!hex || strlen(hex) != 64) return false;
    for (int i = 0; i < 32; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool ingest_hash_set_add_hex(ingest_hash_set *set, const char *hex)
{
    uint8_t digest[32];
    if (!hex_to_digest(hex, digest)) return true;   /* not a hash: nothing to remember */
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        void *p = realloc(set->digests, cap * 32);
        if (!p) return false;
        set->digests = p;
        set->cap = cap;
    }
    memcpy(set->digests[set->n++], digest, 32);
    return true;
}

static int compare_digests(const void *a, const void *b) { return memcmp(a, b, 32); }

void ingest_hash_set_sort(ingest_hash_set *set)
{
    if (set->n) qsort(set->digests, set->n, 32, compare_digests);
}

static bool hash_set_has(const ingest_hash_set *set, const char *hex)
{
    uint8_t digest[32];
    return set && set->n && hex_to_digest(hex, digest) &&
           bsearch(digest, set->digests, set->n, 32, compare_digests) != NULL;
}

void ingest_hash_set_free(ingest_hash_set *set)
{
    free(set->digests);
    memset(set, 0, sizeof *set);
}

/* ---- one item ------------------------------------------------------------------------------ */

static void sha256_hex(const uint8_t *data, size_t size, char hex[65])
{
    unsigned char digest[32];
    unsigned int len = 0;
    EVP_Digest(data, size, digest, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

/* The reason of a status without the leading "PATH: " the library puts there. */
static void set_reason(ingest_item *item, const char *path, const char *message)
{
    size_t n = strlen(path);
    if (!strncmp(message, path, n) && message[n] == ':' && message[n + 1] == ' ')
        message += n + 2;
    snprintf(item->reason, sizeof item->reason, "%s", message);
    item->state = INGEST_ITEM_FAILED;
}

static bool read_all(int fd, uint8_t *buf, size_t size, size_t *got)
{
    *got = 0;
    while (*got < size) {
        ssize_t n = read(fd, buf + *got, size - *got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return false;
        if (n == 0) break;
        *got += (size_t)n;
    }
    return true;
}

/* Reads the first bytes, and the whole file only when it is an image. *data NULL: not one. */
static void read_candidate(const char *path, ingest_item *item, uint8_t **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) item->state = INGEST_ITEM_GONE;
        else set_reason(item, path, strerror(errno));
        return;
    }
    struct stat sb;
    uint8_t head[SNIFF_BYTES];
    size_t got;
    if (fstat(fd, &sb) != 0 || !read_all(fd, head, sizeof head, &got)) {
        set_reason(item, path, strerror(errno));
        close(fd);
        return;
    }
    raddino_sniff sniff;
    int is_image = raddino_image_sniff(head, got, path, &sniff);
    item->format = sniff.format;
    bool decodable = sniff.decodable;
    const char *why = sniff.why;
    if (!is_image) {
        item->state = INGEST_ITEM_NOT_IMAGE;
        close(fd);
        return;
    }
    if ((uint64_t)sb.st_size > INGEST_MAX_FILE_BYTES) {
        set_reason(item, path, "file over 2 GiB, not read");
        close(fd);
        return;
    }
    size_t cap = (size_t)sb.st_size > got ? (size_t)sb.st_size : got;
    uint8_t *buf = malloc(cap ? cap : 1);
    size_t rest = 0;
    bool ok = buf != NULL;
    if (ok) {
        memcpy(buf, head, got);
        ok = read_all(fd, buf + got, cap - got, &rest);
    }
    int saved = errno;
    close(fd);
    if (!ok) {
        free(buf);
        set_reason(item, path, buf ? strerror(saved) : "out of memory");
        return;
    }
    *data = buf;
    *size = got + rest;
    if (!decodable) set_reason(item, path, why);
}

static void decode(const raddino_encoder *enc, const ingest_decode_options *o, int guard_slot,
                   const char *path, const uint8_t *data, size_t size, ingest_item *item)
{
    /* The header first: a file the decoder refuses (multi-frame, say) still says what it is. */
    ingest_guard_enter(o->guard, guard_slot, path);
    if (item->format && !strcmp(item->format, "dicom"))
        item->has_dicom = !raddino_dicom_read_info_memory(data, size, path, o->salt,
                                                          &item->dicom).code;
    ingest_guard_test_hook(path);
    raddino_status st = raddino_image_load_memory_ex(data, size, path, &o->load, &item->image);
    ingest_guard_leave(o->guard, guard_slot);
    if (st.code) {
        set_reason(item, path, st.message);
        return;
    }
    item->width = item->image.width;
    item->height = item->image.height;
    if (item->image.format) item->format = item->image.format;
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    if (info.input_height <= 0) {
        item->state = INGEST_ITEM_READY;   /* size depends on the image: the encoder preprocesses */
        return;
    }
    item->pixels = malloc((size_t)3 * info.input_height * info.input_width * sizeof(float));
    if (!item->pixels) {
        set_reason(item, path, "out of memory");
    } else {
        st = raddino_preprocess(enc, &item->image, NULL, item->pixels);
        if (st.code) set_reason(item, path, st.message);
        else item->state = INGEST_ITEM_READY;
    }
    raddino_image_free(&item->image);
}

void ingest_item_load(const raddino_encoder *enc, const ingest_decode_options *options,
                     const char *path, const ingest_hash_set *known, int guard_slot,
                     ingest_item *item)
{
    size_t file = item->file;
    ingest_item_clear(item);
    item->file = file;
    uint8_t *data;
    size_t size;
    read_candidate(path, item, &data, &size);
    if (!data) return;
    sha256_hex(data, size, item->sha256);
    if (item->state == INGEST_ITEM_FAILED) {
        /* recognised but not decodable: recorded with its hash */
    } else if (hash_set_has(known, item->sha256)) {
        item->state = INGEST_ITEM_KNOWN_HASH;
    } else {
        decode(enc, options, guard_slot, path, data, size, item);
    }
    free(data);
}

void ingest_item_clear(ingest_item *item)
{
    free(item->cls);
    free(item->pixels);
    raddino_image_free(&item->image);
    memset(item, 0, sizeof *item);
}

/* ---- the pipeline -------------------------------------------------------------------------- */

typedef struct {
    ingest_item item;
    bool ready;
} slot;

/* What a decoder thread is started with: the pipeline and its own slot in the guard. */
typedef struct {
    ingest_pipeline *pipeline;
    int guard_slot;
} decoder_start;

struct ingest_pipeline {
    const raddino_encoder *enc;
    const ingest_decode_options *options;
    const ingest_file *files;
    const size_t *todo;
    size_t n_todo;
    const ingest_hash_set *known;
    slot *slots;
    size_t window;
    size_t next_take;       /* next item a thread will take */
    size_t next_give;       /* next item the consumer gets */
    size_t released;        /* items the consumer is done with: their slots are free */
    bool stopping;
    pthread_mutex_t lock;
    pthread_cond_t taken_room;  /* signalled when the consumer frees a slot */
    pthread_cond_t item_ready;  /* signalled when a thread finishes an item */
    pthread_t *threads;
    decoder_start *starts;
    int n_threads;
    /* encode: one worker per team thread, and the thread that starts the team */
    raddino_encoder_worker **workers;
    int n_workers;
    pthread_t team;
    bool team_started;
    int hidden;
};

static double seconds_now(void);

/* A worker's encoding of a READY item (pixels, or the image when the size is not fixed). */
static void encode_item(const ingest_pipeline *p, raddino_encoder_worker *worker,
                        ingest_item *item)
{
    double t = seconds_now();
    item->encoded = true;
    item->cls = malloc((size_t)p->hidden * sizeof(float));
    if (!item->cls)
        item->encode_status = raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
    else if (item->pixels)
        item->encode_status = raddino_encoder_worker_encode(worker, item->pixels, item->cls, NULL);
    else
        item->encode_status = raddino_encoder_worker_embed_image(worker, &item->image, item->cls,
                                                                 NULL);
    /* The network input is not needed any more: free it here, in the worker's own time. */
    free(item->pixels);
    item->pixels = NULL;
    raddino_image_free(&item->image);
    item->encode_seconds = seconds_now() - t;
}

/* One thread's loop: take the next item while it fits in the window, load it (and encode it
 * when `worker` is given), hand it over. */
static void run_items(ingest_pipeline *p, int guard_slot, raddino_encoder_worker *worker)
{
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stopping && p->next_take < p->n_todo &&
               p->next_take >= p->released + p->window)
            pthread_cond_wait(&p->taken_room, &p->lock);
        if (p->stopping || p->next_take >= p->n_todo) break;
        size_t i = p->next_take++;
        slot *s = &p->slots[i % p->window];
        pthread_mutex_unlock(&p->lock);

        s->item.file = p->todo[i];
        ingest_item_load(p->enc, p->options, p->files[p->todo[i]].path, p->known,
                        guard_slot, &s->item);
        if (worker && s->item.state == INGEST_ITEM_READY) encode_item(p, worker, &s->item);

        pthread_mutex_lock(&p->lock);
        s->ready = true;
        pthread_cond_broadcast(&p->item_ready);
    }
    pthread_mutex_unlock(&p->lock);
}

static void *decoder_thread(void *arg)
{
    const decoder_start *start = arg;
    run_items(start->pipeline, start->guard_slot, NULL);
    return NULL;
}

/* Starts the workers' OpenMP team and is its first thread. A team smaller than asked (the
 * OpenMP runtime's thread limit) still does every item. */
static void *team_thread(void *arg)
{
    ingest_pipeline *p = arg;
    #pragma omp parallel num_threads(p->n_workers)
    {
        int t = omp_get_thread_num();
        run_items(p, t, p->workers[t]);
    }
    return NULL;
}

raddino_status ingest_pipeline_start(const raddino_encoder *enc,
                                     const ingest_decode_options *options,
                                     const ingest_file *files, const size_t *todo, size_t n_todo,
                                     int jobs, bool encode, const ingest_hash_set *known,
                                     ingest_pipeline **out)
{
    raddino_status st = {RADDINO_OK, ""};
    *out = NULL;
    ingest_pipeline *p = calloc(1, sizeof *p);
    if (jobs < 1) jobs = 1;
    size_t window = (size_t)jobs * 2 + 2;
    if (p) p->slots = calloc(window, sizeof *p->slots);
    if (p) p->threads = calloc((size_t)jobs, sizeof *p->threads);
    if (p) p->starts = calloc((size_t)jobs, sizeof *p->starts);
    if (!p || !p->slots || !p->threads || !p->starts) {
        if (p) free(p->slots), free(p->threads), free(p->starts);
        free(p);
        st.code = RADDINO_ERR_NOMEM;
        snprintf(st.message, sizeof st.message, "out of memory");
        return st;
    }
    p->enc = enc;
    p->options = options;
    p->files = files;
    p->todo = todo;
    p->n_todo = n_todo;
    p->known = known;
    p->window = window;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->taken_room, NULL);
    pthread_cond_init(&p->item_ready, NULL);
    if (encode) {
        raddino_model_info info;
        raddino_encoder_info(enc, &info);
        p->hidden = info.hidden;
        p->workers = calloc((size_t)jobs, sizeof *p->workers);
        if (!p->workers) st = raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
        for (int i = 0; i < jobs && !st.code; i++) {
            st = raddino_encoder_worker_create(enc, &p->workers[i]);
            if (!st.code) p->n_workers++;
        }
        int rc = st.code ? 0 : pthread_create(&p->team, NULL, team_thread, p);
        if (rc) st = raddino_status_error(RADDINO_ERR_NOMEM, "cannot start a thread: %s",
                                          strerror(rc));
        p->team_started = !st.code;
        if (st.code) {
            ingest_pipeline_free(p);
            return st;
        }
        *out = p;
        return st;
    }
    for (int i = 0; i < jobs; i++) {
        p->starts[i] = (decoder_start){p, i};
        int rc = pthread_create(&p->threads[i], NULL, decoder_thread, &p->starts[i]);
        if (rc) {
            if (i == 0) {
                st.code = RADDINO_ERR_NOMEM;
                snprintf(st.message, sizeof st.message, "cannot start a thread: %s",
                         strerror(rc));
                ingest_pipeline_free(p);
                return st;
            }
            break;      /* fewer threads than asked: still works */
        }
        p->n_threads++;
    }
    *out = p;
    return st;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

ingest_item *ingest_pipeline_next(ingest_pipeline *p, double *waited)
{
    pthread_mutex_lock(&p->lock);
    /* The previous item is consumed: free its slot for the threads. Its buffers are freed by
     * the decoder thread that takes the slot next (ingest_item_load clears the item first), not
     * here: returning a network input's megabytes to the system is not the encoder's work. */
    if (p->next_give > p->released) {
        slot *done = &p->slots[(p->next_give - 1) % p->window];
        done->ready = false;
        p->released = p->next_give;
        pthread_cond_broadcast(&p->taken_room);
    }
    if (p->next_give >= p->n_todo) {
        pthread_mutex_unlock(&p->lock);
        return NULL;
    }
    slot *s = &p->slots[p->next_give % p->window];
    if (!s->ready) {
        double start = seconds_now();
        while (!s->ready) pthread_cond_wait(&p->item_ready, &p->lock);
        if (waited) *waited += seconds_now() - start;
    }
    p->next_give++;
    pthread_mutex_unlock(&p->lock);
    return &s->item;
}

void ingest_pipeline_free(ingest_pipeline *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->taken_room);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    if (p->team_started) pthread_join(p->team, NULL);
    for (int i = 0; i < p->n_workers; i++) raddino_encoder_worker_free(p->workers[i]);
    free(p->workers);
    for (size_t i = 0; i < p->window; i++) ingest_item_clear(&p->slots[i].item);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->taken_room);
    pthread_cond_destroy(&p->item_ready);
    free(p->slots);
    free(p->threads);
    free(p->starts);
    free(p);
}
