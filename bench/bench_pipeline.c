/* bench_pipeline.c — does `raddino index` keep every core busy? Measured in one run on one
 * folder, for one model and precision:
 *
 *   raddino_bench_pipeline --model DIR [--precision bf16|fp32] [--threads N] [--workers W]
 *                          [--encode-images K] FOLDER
 *
 *   decode   core-seconds per file of what the indexer does to a file before the encoder:
 *            read, SHA-256, DICOM header, decode, preprocess (ingest_item_load, the indexer's
 *            own function), every file once on this one thread: its CPU time plus that of
 *            the child processes it waited for (GDCM's codecs decode in a child), per file;
 *   encode   core-seconds per image of the encoder alone, in the faster of the two ways the
 *            indexer can run it: one image at a time on all N threads (N x wall per image),
 *            or N single-thread workers side by side (N x wall / images); K images each
 *            (default 2N), on a network input of the folder, after one untimed pass;
 *   index    files per second of raddino_ingest into a new temporary database (default
 *            parameters but --workers: W > 0 workers, 0 the decoder threads, default the
 *            library's automatic choice), wall time of the call, the model's identity
 *            hashed before;
 *   bound    N / (decode + encode), the files per second N busy cores would reach, and the
 *            ratio index / bound. Also printed: decode core-seconds with N threads decoding at
 *            once (N x wall / files; decoders beside each other share caches and memory), and
 *            the bound and ratio with that figure.
 *
 * N is the encoder's threads (--threads, default all cores). Every file of the folder must be
 * new content (bench/make_pipeline_folders.sh makes such folders): the bench says so when the
 * index reused or failed some. OpenMP waits passively, as in the command.
 */
#include "ingest_internal.h"
#include "raddino_encoder.h"
#include "raddino_ingest.h"
#include "raddino_store.h"

#include <dirent.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double children_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

typedef struct {
    char **paths;
    int n, cap;
} file_list;

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_files(const char *dir, file_list *out)
{
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            list_files(path, out);
        } else if (S_ISREG(sb.st_mode)) {
            if (out->n == out->cap) {
                out->cap = out->cap ? 2 * out->cap : 64;
                out->paths = realloc(out->paths, (size_t)out->cap * sizeof *out->paths);
                if (!out->paths) exit(1);
            }
            out->paths[out->n++] = strdup(path);
        }
    }
    closedir(d);
}

static void die(const raddino_status *st)
{
    fprintf(stderr, "raddino_bench_pipeline: %s\n", st->message);
    exit(1);
}

/* The command waits passively in OpenMP unless the user chose a policy (cli/main.c says why);
 * the bench does the same, so that its figures are the command's. */
static void same_openmp_wait_as_the_command(char **argv)
{
    if (getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    execv("/proc/self/exe", argv);
}

/* Decode core-seconds per file; keeps the first network input in *pixels. */
static double measure_decode(raddino_encoder *enc, const file_list *files, float **pixels,
                             double *wall_per_file, int *decoded)
{
    ingest_decode_options options;
    memset(&options, 0, sizeof options);
    raddino_status st = raddino_encoder_load_options(enc, &options.load);
    if (st.code) die(&st);
    options.salt = "bench";
    double cpu = 0, wall = 0;
    *decoded = 0;
    for (int i = 0; i < files->n; i++) {
        ingest_item item;
        memset(&item, 0, sizeof item);
        double c0 = thread_cpu(), k0 = children_cpu(), t0 = now();
        ingest_item_load(enc, &options, files->paths[i], NULL, -1, &item);
        wall += now() - t0;
        cpu += thread_cpu() - c0 + children_cpu() - k0;
        if (item.state == INGEST_ITEM_READY) {
            ++*decoded;
            if (!*pixels && item.pixels) {
                *pixels = item.pixels;
                item.pixels = NULL;
            }
        } else {
            fprintf(stderr, "note: %s: not decoded (%s)\n", files->paths[i],
                    item.state == INGEST_ITEM_FAILED ? item.reason : "not an image");
        }
        ingest_item_clear(&item);
    }
    *wall_per_file = wall / files->n;
    return cpu / files->n;
}

/* Decode core-seconds per file when every core decodes at once (threads x wall / files): what
 * a decoder costs next to another one, which shares the caches and the memory bus with it. */
static double measure_decode_together(raddino_encoder *enc, const file_list *files, int threads)
{
    ingest_decode_options options;
    memset(&options, 0, sizeof options);
    raddino_status st = raddino_encoder_load_options(enc, &options.load);
    if (st.code) die(&st);
    options.salt = "bench";
    double t = now();
    #pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int i = 0; i < files->n; i++) {
        ingest_item item;
        memset(&item, 0, sizeof item);
        ingest_item_load(enc, &options, files->paths[i], NULL, -1, &item);
        ingest_item_clear(&item);
    }
    return threads * (now() - t) / files->n;
}

/* Seconds of wall time for `images` forward passes on all threads, one at a time. */
static double time_whole_encoder(raddino_encoder *enc, const float *pixels, float *tokens,
                                 int images)
{
    raddino_status st = raddino_encode_pixels(enc, 1, pixels, tokens);   /* untimed */
    if (st.code) die(&st);
    double t = now();
    for (int i = 0; i < images; i++) {
        st = raddino_encode_pixels(enc, 1, pixels, tokens);
        if (st.code) die(&st);
    }
    return now() - t;
}

/* Seconds of wall time for `images` forward passes by `threads` one-thread workers at once,
 * as the indexer runs them (the threads of one OpenMP team). */
static double time_workers(raddino_encoder *enc, const float *pixels, int threads, int images,
                           int hidden)
{
    raddino_encoder_worker **w = calloc((size_t)threads, sizeof *w);
    float *cls = malloc((size_t)threads * hidden * sizeof *cls);
    if (!w || !cls) exit(1);
    for (int i = 0; i < threads; i++) {
        raddino_status st = raddino_encoder_worker_create(enc, &w[i]);
        if (st.code) die(&st);
    }
    double elapsed = 0;
    for (int round = 0; round < 2; round++) {     /* the first one untimed */
        double t = now();
        int failed = 0;
        #pragma omp parallel num_threads(threads) reduction(+ : failed)
        {
            #pragma omp for schedule(dynamic, 1)
            for (int i = 0; i < (round ? images : threads); i++) {
                int me = omp_get_thread_num();
                raddino_status st = raddino_encoder_worker_encode(w[me], pixels,
                                                                  cls + (size_t)me * hidden, NULL);
                failed += st.code != 0;
            }
        }
        if (failed) {
            fprintf(stderr, "raddino_bench_pipeline: a worker failed to encode\n");
            exit(1);
        }
        elapsed = now() - t;
    }
    for (int i = 0; i < threads; i++) raddino_encoder_worker_free(w[i]);
    free(w);
    free(cls);
    return elapsed;
}

int main(int argc, char **argv)
{
    same_openmp_wait_as_the_command(argv);
    const char *model = NULL, *precision = "bf16", *folder = NULL;
    int threads = 0, images = 0, workers = -2;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--model") && value) model = argv[++i];
        else if (!strcmp(argv[i], "--precision") && value) precision = argv[++i];
        else if (!strcmp(argv[i], "--threads") && value) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--workers") && value) workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--encode-images") && value) images = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !folder) folder = argv[i];
        else {
            fprintf(stderr, "usage: raddino_bench_pipeline --model DIR [--precision bf16|fp32] "
                            "[--threads N] [--workers W] [--encode-images K] FOLDER\n");
            return 2;
        }
    }
    if (!model || !folder) {
        fprintf(stderr, "raddino_bench_pipeline: --model and FOLDER are needed\n");
        return 2;
    }
    raddino_encoder_params ep = raddino_encoder_default_params();
    ep.n_threads = threads;
    ep.precision = !strcmp(precision, "fp32") ? RADDINO_PRECISION_FP32 : RADDINO_PRECISION_BF16;
    raddino_encoder *enc;
    raddino_status st = raddino_encoder_open(model, &ep, &enc);
    if (st.code) die(&st);
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    int cores = raddino_encoder_threads(enc);
    if (images <= 0) images = 2 * cores;
    raddino_model_identity identity;
    st = raddino_encoder_identity(enc, &identity);     /* hashes the weights once, untimed */
    if (st.code) die(&st);

    file_list files = {0};
    list_files(folder, &files);
    if (!files.n) {
        fprintf(stderr, "raddino_bench_pipeline: %s: no files\n", folder);
        return 1;
    }
    qsort(files.paths, (size_t)files.n, sizeof *files.paths, compare_strings);
    printf("folder %s: %d files; model %s, %s (%s), %d threads\n", folder, files.n, model,
           info.precision == RADDINO_PRECISION_BF16 ? "bf16" : "fp32", info.kernel, cores);
    fflush(stdout);

    float *pixels = NULL;
    double decode_wall;
    int decoded;
    double decode = measure_decode(enc, &files, &pixels, &decode_wall, &decoded);
    if (!pixels) {
        fprintf(stderr, "raddino_bench_pipeline: no file decoded to a fixed-size input\n");
        return 1;
    }
    double together = measure_decode_together(enc, &files, cores);
    printf("decode: %.4f core-s/file (read, hash, decode, preprocess; one thread; wall %.4f s; "
           "%d threads at once: %.4f)\n",
           decode, decode_wall, cores, together);
    fflush(stdout);

    float *tokens = malloc((size_t)info.tokens * info.hidden * sizeof *tokens);
    if (!tokens) return 1;
    double whole = cores * time_whole_encoder(enc, pixels, tokens, images) / images;
    double side = cores * time_workers(enc, pixels, cores, images, info.hidden) / images;
    double encode = whole < side ? whole : side;
    printf("encode: %.4f core-s/image (all %d threads on one image: %.4f; %d one-thread "
           "workers: %.4f; %d images each)\n",
           encode, cores, whole, cores, side, images);
    fflush(stdout);

    char dir[] = "/tmp/raddino_bench_pipeline_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char db[sizeof dir + 16];
    snprintf(db, sizeof db, "%s/bench.db", dir);
    raddino_store_params sp = raddino_store_default_params();
    raddino_store *store;
    st = raddino_store_open(db, &sp, &store);
    if (st.code) die(&st);
    raddino_ingest_params ip = raddino_ingest_default_params();
    if (workers >= 0) ip.workers = workers > 0 ? workers : -1;
    raddino_ingest_result r;
    const char *paths[] = {folder};
    double t = now();
    st = raddino_ingest(store, enc, paths, 1, &ip, &r);
    double wall = now() - t;
    raddino_store_close(store);
    char cmd[sizeof dir + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", dir);
    if (st.code) die(&st);
    int used = ingest_workers(&ip, enc);
    double rate = files.n / wall;
    double bound = cores / (decode + encode);
    printf("index: %.3f files/s (%d files in %.2f s; %s; added %lld, reused %lld, failed %lld)\n",
           rate, files.n, wall, used > 0 ? "workers" : "decoder threads + encoder",
           (long long)r.counts.added, (long long)r.counts.reused, (long long)r.counts.failed);
    if (used > 0) printf("  (%d workers)\n", used);
    printf("bound: %.3f files/s = %d / (%.4f + %.4f)\n", bound, cores, decode, encode);
    printf("ratio: %.3f\n", rate / bound);
    printf("(with the decode cost of %d decoders at once: bound %.3f files/s, ratio %.3f)\n",
           cores, cores / (together + encode), rate / (cores / (together + encode)));
    if (r.counts.added != files.n || decoded != files.n)
        printf("note: %d files, %d decoded, %lld added: the bound and the index did not do the "
               "same work\n", files.n, decoded, (long long)r.counts.added);
    free(pixels);
    free(tokens);
    for (int i = 0; i < files.n; i++) free(files.paths[i]);
    free(files.paths);
    raddino_encoder_close(enc);
    return 0;
}
