/* bench_serve.c — searches per second of `raddino serve` at 1, 2, 4, 8 concurrent clients, one
 * query at a time (--search-batch 0, the path before batching) against batched, and the
 * exact-fp16 / exact-sq8 index types against flat, all in the same run.
 *
 *   raddino_bench_serve --prepare [--dir DIR] [--n N]   makes DIR/flat.db (N clustered 768-d
 *                        vectors put through the library, no encoder) and DIR/fp16.db (a copy),
 *                        and builds their saved indexes (flat, exact-fp16): not timed
 *   raddino_bench_serve [--dir DIR] [--raddino PATH] [--seconds S]   the timed part:
 *     1. in process, on DIR/flat.db: 64 queries through raddino_collection_search one at a
 *        time (FAISS, the path before batching), then in batches of 8 through
 *        raddino_collection_search_batch for flat, exact-fp16 and exact-sq8, with whether each
 *        type's ids and scores equal flat's (batched; and FAISS flat's ids);
 *     2. `raddino serve` on 127.0.0.1 (any free port), for each of: flat with --search-batch 0,
 *        flat batched (default), exact-fp16 batched: C client threads, each with its own
 *        keep-alive connection, post {"vector": [...], "k": 10} back to back for S seconds;
 *        searches/s, p50 and p99 latency per client count.
 * Data: 1,000 random centres, each vector a centre plus Gaussian noise twice its norm (as
 * bench_index), queries drawn the same way (seed 2). */
#define _GNU_SOURCE
#include "raddino_collection.h"
#include "raddino_index.h"
#include "raddino_store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DIM 768
#define N_QUERIES 64
#define N_CENTRES 1000

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_gauss(uint64_t *s)
{
    double u = ((rng_next(s) >> 11) + 0.5) * 0x1.0p-53, v = ((rng_next(s) >> 11) + 0.5) * 0x1.0p-53;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* n vectors: a centre (of N_CENTRES, seed 1) plus noise twice its norm. */
static float *make_vectors(size_t n, uint64_t seed)
{
    static float centres[N_CENTRES * DIM];
    uint64_t s = 1;
    float scale = 1.0f / sqrtf((float)DIM);
    for (size_t i = 0; i < (size_t)N_CENTRES * DIM; i++) centres[i] = scale * rng_gauss(&s);
    float *x = malloc(n * DIM * sizeof *x);
    if (!x) return NULL;
    s = seed;
    for (size_t i = 0; i < n; i++) {
        const float *c = centres + (rng_next(&s) % N_CENTRES) * DIM;
        for (int j = 0; j < DIM; j++) x[i * DIM + j] = c[j] + 2.0f * scale * rng_gauss(&s);
    }
    return x;
}

static int fail(const char *what, raddino_status st)
{
    fprintf(stderr, "raddino_bench_serve: %s: %s\n", what, st.message);
    return 1;
}

/* ---- --prepare ----------------------------------------------------------------------------- */

static int put_all(const char *path, const float *x, size_t n)
{
    raddino_store *db;
    raddino_store_params sp = raddino_store_default_params();
    raddino_status st = raddino_store_open(path, &sp, &db);
    if (st.code) return fail(path, st);
    raddino_store_model m = {"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                             "{\"bench\": \"serve\"}", NULL, NULL, DIM};
    int64_t model_id, dropped;
    st = raddino_store_use_model(db, &m, 0, &model_id, &dropped);
    for (size_t i = 0; i < n && !st.code; i++) {
        if (i % 10000 == 0 && !st.code) st = raddino_store_begin(db);
        char p[64];
        snprintf(p, sizeof p, "/bench/img%07zu.png", i);
        raddino_store_image img;
        memset(&img, 0, sizeof img);
        img.path = p;
        img.size = 1000;
        snprintf(img.sha256, sizeof img.sha256, "%064zx", i);
        img.width = img.height = 512;
        img.format = "png";
        img.status = RADDINO_IMAGE_OK;
        img.embedded_at = 1;
        st = raddino_store_put_image(db, &img, x + i * DIM, NULL);
        if (!st.code && (i % 10000 == 9999 || i + 1 == n)) st = raddino_store_commit(db);
    }
    raddino_store_close(db);
    return st.code ? fail(path, st) : 0;
}

static int build_index(const char *db, const char *type)
{
    raddino_collection_params cp = raddino_collection_default_params();
    cp.index.type = type;
    raddino_collection *c;
    raddino_status st = raddino_collection_open(db, &cp, &c);
    if (st.code) return fail(db, st);
    raddino_collection_info info;
    raddino_collection_get_info(c, &info);
    printf("%s: %s index of %lld vectors %s in %.1f s\n", db, type, (long long)info.vectors,
           info.origin == RADDINO_INDEX_LOADED ? "loaded" : "built", info.seconds);
    raddino_collection_close(c);
    return 0;
}

static int prepare(const char *dir, size_t n)
{
    char flat[512], fp16[512];
    snprintf(flat, sizeof flat, "%s/flat.db", dir);
    snprintf(fp16, sizeof fp16, "%s/fp16.db", dir);
    mkdir(dir, 0755);
    struct stat sb;
    if (stat(flat, &sb) != 0) {
        float *x = make_vectors(n, 3);
        if (!x) return 1;
        double t0 = now();
        int rc = put_all(flat, x, n) || put_all(fp16, x, n);
        free(x);
        if (rc) return rc;
        printf("%zu vectors stored twice in %.1f s\n", n, now() - t0);
    }
    return build_index(flat, "flat") || build_index(fp16, "exact-fp16");
}

/* ---- 1. in process ------------------------------------------------------------------------ */

static int compare_runs(const float *s, const int64_t *i, const float *s0, const int64_t *i0,
                        size_t n, int *same_ids, int *same_scores)
{
    *same_ids = *same_scores = 1;
    for (size_t j = 0; j < n; j++) {
        if (i[j] != i0[j]) *same_ids = 0;
        if (memcmp(&s[j], &s0[j], sizeof *s)) *same_scores = 0;
    }
    return 0;
}

static int in_process(const char *dir, const float *q)
{
    char flat[512];
    snprintf(flat, sizeof flat, "%s/flat.db", dir);
    const char *types[] = {"flat", "exact-fp16", "exact-sq8"};
    const int k = 10, batch = 8;
    float ref_s[N_QUERIES * 10], s[N_QUERIES * 10], faiss_s[N_QUERIES * 10];
    int64_t ref_i[N_QUERIES * 10], ids[N_QUERIES * 10], faiss_i[N_QUERIES * 10];
    printf("\nin process, %d queries, k %d (index built or loaded before timing)\n", N_QUERIES, k);
    for (int t = 0; t < 3; t++) {
        raddino_collection_params cp = raddino_collection_default_params();
        cp.index.type = types[t];
        cp.no_save = t > 0;     /* flat.db keeps its flat index file */
        raddino_collection *c;
        raddino_status st = raddino_collection_open(flat, &cp, &c);
        if (st.code) return fail(flat, st);
        raddino_index_info info;
        raddino_index_get_info(raddino_collection_index(c), &info);
        if (t == 0) {
            double t0 = now();
            for (int j = 0; j < N_QUERIES && !st.code; j++)
                st = raddino_collection_search(c, q + (size_t)j * DIM, 1, k, -2, NULL, NULL,
                                               faiss_s + j * k, faiss_i + j * k);
            if (st.code) return fail("search", st);
            double dt = now() - t0;
            printf("  %-11s one at a time (FAISS, before batching): %7.1f searches/s "
                   "(index %.0f MB)\n", "flat", N_QUERIES / dt, info.memory_bytes / 1e6);
        }
        double t0 = now();
        for (int j = 0; j < N_QUERIES && !st.code; j += batch)
            st = raddino_collection_search_batch(c, q + (size_t)j * DIM, batch, k, -2, NULL,
                                                 NULL, s + j * k, ids + j * k);
        if (st.code) return fail("search", st);
        double dt = now() - t0;
        if (t == 0) {
            memcpy(ref_s, s, sizeof s);
            memcpy(ref_i, ids, sizeof ids);
        }
        int same_ids, same_scores, faiss_ids, faiss_scores;
        compare_runs(s, ids, ref_s, ref_i, N_QUERIES * (size_t)k, &same_ids, &same_scores);
        compare_runs(s, ids, faiss_s, faiss_i, N_QUERIES * (size_t)k, &faiss_ids, &faiss_scores);
        double max_diff = 0;
        for (int j = 0; j < N_QUERIES * k; j++)
            if (fabs((double)s[j] - faiss_s[j]) > max_diff) max_diff = fabs((double)s[j] - faiss_s[j]);
        printf("  %-11s batches of %d: %7.1f searches/s (index %.0f MB); vs flat batched: ids %s, "
               "scores %s; vs FAISS flat: ids %s, max score diff %.1e\n",
               types[t], batch, N_QUERIES / dt, info.memory_bytes / 1e6,
               same_ids ? "same" : "DIFFER", same_scores ? "same" : "DIFFER",
               faiss_ids ? "same" : "DIFFER", max_diff);
        raddino_collection_close(c);
    }
    return 0;
}

/* ---- 2. the server ------------------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int port;
} server;

static int start_server(const char *raddino, const char *db, const char *batch, server *out)
{
    int fds[2];
    if (pipe(fds) != 0) return 1;
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(raddino, raddino, "serve", "--db", db, "--port", "0", "--model", "/nonexistent",
              "--search-batch", batch, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[256];
    out->pid = pid;
    out->port = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "listening on http://127.0.0.1:");
        if (p) {
            out->port = atoi(p + strlen("listening on http://127.0.0.1:"));
            break;
        }
    }
    if (f) fclose(f);   /* the server writes nothing more to stdout */
    if (!out->port) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        fprintf(stderr, "raddino_bench_serve: %s serve did not start\n", raddino);
        return 1;
    }
    return 0;
}

static void stop_server(server *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
}

typedef struct {
    int port;
    char **bodies;
    double until;
    int first;
    double *lat;        /* latencies, seconds */
    size_t n, cap;
    int failed;
} client;

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request on the connection; 0 when a 200 with its whole body came back. */
static int post(int fd, int port, const char *body, char *buf, size_t cap)
{
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "POST /api/search HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      port, strlen(body));
    if (write(fd, head, (size_t)hn) != hn) return 1;
    size_t bl = strlen(body);
    if (write(fd, body, bl) != (ssize_t)bl) return 1;
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r <= 0) return 1;
        got += (size_t)r;
        buf[got] = 0;
        end = strstr(buf, "\r\n\r\n");
        if (!end && got + 1 >= cap) return 1;
    }
    const char *cl = strcasestr(buf, "Content-Length:");
    size_t want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
    while (got < want) {
        if (want >= cap) return 1;
        ssize_t r = read(fd, buf + got, want - got);
        if (r <= 0) return 1;
        got += (size_t)r;
    }
    return strncmp(buf, "HTTP/1.1 200", 12) != 0;
}

static void *run_client(void *arg)
{
    client *c = arg;
    int fd = connect_to(c->port);
    char *buf = malloc(1 << 16);
    if (fd < 0 || !buf) c->failed = 1;
    for (int i = c->first; !c->failed && now() < c->until; i++) {
        double t0 = now();
        if (post(fd, c->port, c->bodies[i % N_QUERIES], buf, 1 << 16)) {
            c->failed = 1;
            break;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 1024;
            c->lat = realloc(c->lat, c->cap * sizeof *c->lat);
        }
        c->lat[c->n++] = now() - t0;
    }
    if (fd >= 0) close(fd);
    free(buf);
    return NULL;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int load(const char *label, int port, char **bodies, double seconds, double *rate_1,
                double *p99_1, double *rate_8)
{
    int counts[] = {1, 2, 4, 8};
    for (int ci = 0; ci < 4; ci++) {
        int nc = counts[ci];
        client cl[8];
        pthread_t th[8];
        /* A short warm-up request per client count (page cache, first connection). */
        int fd = connect_to(port);
        char buf[1 << 16];
        if (fd < 0 || post(fd, port, bodies[0], buf, sizeof buf)) {
            fprintf(stderr, "raddino_bench_serve: warm-up request failed\n");
            return 1;
        }
        close(fd);
        double t0 = now();
        for (int i = 0; i < nc; i++) {
            cl[i] = (client){port, bodies, t0 + seconds, i * 8, NULL, 0, 0, 0};
            pthread_create(&th[i], NULL, run_client, &cl[i]);
        }
        size_t total = 0;
        int failed = 0;
        for (int i = 0; i < nc; i++) {
            pthread_join(th[i], NULL);
            total += cl[i].n;
            failed |= cl[i].failed;
        }
        double dt = now() - t0;
        double *all = malloc((total ? total : 1) * sizeof *all);
        size_t m = 0;
        for (int i = 0; i < nc; i++) {
            memcpy(all + m, cl[i].lat, cl[i].n * sizeof *all);
            m += cl[i].n;
            free(cl[i].lat);
        }
        qsort(all, total, sizeof *all, compare_double);
        double p50 = total ? all[total / 2] : NAN, p99 = total ? all[(size_t)(0.99 * (total - 1))] : NAN;
        double rate = total / dt;
        printf("  %-22s %d client%s %7.1f searches/s  p50 %6.1f ms  p99 %6.1f ms  (%zu)%s\n", label,
               nc, nc > 1 ? "s" : " ", rate, p50 * 1e3, p99 * 1e3, total,
               failed ? "  A REQUEST FAILED" : "");
        fflush(stdout);
        if (nc == 1) *rate_1 = rate, *p99_1 = p99;
        if (nc == 8) *rate_8 = rate;
        free(all);
        if (failed) return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = "bench-serve-data", *raddino = "./raddino";
    size_t n = 100000;
    double seconds = 3;
    int do_prepare = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--prepare")) do_prepare = 1;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--raddino") && i + 1 < argc) raddino = argv[++i];
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: raddino_bench_serve [--prepare] [--dir DIR] [--n N] "
                            "[--raddino PATH] [--seconds S]\n");
            return 2;
        }
    }
    if (do_prepare) return prepare(dir, n);
    signal(SIGPIPE, SIG_IGN);
    float *q = make_vectors(N_QUERIES, 2);
    char **bodies = calloc(N_QUERIES, sizeof *bodies);
    for (int j = 0; q && bodies && j < N_QUERIES; j++) {
        size_t cap = 16 * DIM + 64, len = 0;
        bodies[j] = malloc(cap);
        len += (size_t)snprintf(bodies[j] + len, cap - len, "{\"k\": 10, \"vector\": [");
        for (int t = 0; t < DIM; t++)
            len += (size_t)snprintf(bodies[j] + len, cap - len, "%s%.7g", t ? "," : "",
                                    q[(size_t)j * DIM + t]);
        snprintf(bodies[j] + len, cap - len, "]}");
    }
    if (in_process(dir, q)) return 1;
    char flat[512], fp16[512];
    snprintf(flat, sizeof flat, "%s/flat.db", dir);
    snprintf(fp16, sizeof fp16, "%s/fp16.db", dir);
    struct {
        const char *label, *db, *batch;
    } runs[] = {{"flat, one at a time", flat, "0"},
                {"flat, batched", flat, "64"},
                {"exact-fp16, batched", fp16, "64"}};
    double rate1[3], p99_1[3], rate8[3];
    printf("\nraddino serve on 127.0.0.1, %.0f s per point, k 10, JSON vector queries\n", seconds);
    for (int r = 0; r < 3; r++) {
        server s;
        if (start_server(raddino, runs[r].db, runs[r].batch, &s)) return 1;
        int rc = load(runs[r].label, s.port, bodies, seconds, &rate1[r], &p99_1[r], &rate8[r]);
        stop_server(&s);
        if (rc) return 1;
    }
    printf("\nbatched at 8 clients / one at a time at 1 client: %.2fx (flat), %.2fx (exact-fp16); "
           "target >= 4x\n", rate8[1] / rate1[0], rate8[2] / rate1[0]);
    printf("p99 at 1 client: one at a time %.1f ms, batched %.1f ms (flat), %.1f ms (exact-fp16); "
           "target: batched no worse\n", p99_1[0] * 1e3, p99_1[1] * 1e3, p99_1[2] * 1e3);
    for (int j = 0; j < N_QUERIES; j++) free(bodies[j]);
    free(bodies);
    free(q);
    return 0;
}
