/* bench_embed.c — a folder of images through the command's path, both precisions: how close is
 * the reduced precision to float32 on every image, and what does an image cost through
 * `raddino embed` next to the forward pass alone?
 *
 *   raddino_bench_embed --model DIR [--precision bf16] [--threads N] [--repeats R]
 *                       [--command PATH/raddino] [--time-images N] [--each] FOLDER
 *
 * Every file under FOLDER (recursively; files that do not load are counted and skipped) is
 * embedded in float32 and in PRECISION with raddino_embed_file, the call `raddino embed` makes
 * per image (read, decode, preprocess, forward). Printed:
 *   - CLS cosine of PRECISION against float32: min (with its file), median, max (--each: every
 *     image's as it is measured);
 *   - per precision, the mean seconds per image of raddino_embed_file and, beside it, of the
 *     forward pass alone (raddino_encode_pixels on the same image's network input, what
 *     raddino_bench times), measured alternately image by image, R rounds (on the first N
 *     images with --time-images N: a busy machine makes a whole folder slow);
 *   - with --command: the command itself, `raddino embed` on all the images and on the first
 *     one, alternately R times; (all - one) / (N - 1) is what one more image costs, whole
 *     process (start-up and model load cancel out). Its ratio to the forward pass is the
 *     command's overhead.
 * The machine may be busy: the ratios, measured in the same minutes, are what carries over.
 * OpenMP waits passively, as in the command, unless OMP_WAIT_POLICY says otherwise.
 */
#include "raddino_encoder.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    char **paths;
    int n, cap;
} file_list;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_file(file_list *l, const char *path)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->paths = realloc(l->paths, (size_t)l->cap * sizeof *l->paths);
        if (!l->paths) exit(1);
    }
    l->paths[l->n++] = strdup(path);
}

/* Regular files under dir, recursively, skipping names that start with a dot. */
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
        if (S_ISDIR(sb.st_mode)) list_files(path, out);
        else if (S_ISREG(sb.st_mode)) add_file(out, path);
    }
    closedir(d);
}

static raddino_encoder *open_encoder(const char *model, int precision, int threads)
{
    raddino_encoder_params params = raddino_encoder_default_params();
    params.n_threads = threads;
    params.precision = precision;
    raddino_encoder *enc = NULL;
    raddino_status st = raddino_encoder_open(model, &params, &enc);
    if (st.code) {
        fprintf(stderr, "raddino_bench_embed: %s\n", st.message);
        exit(1);
    }
    return enc;
}

static double cosine(const float *a, const float *b, int n)
{
    double dot = 0, na = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return dot / sqrt(na * nb);
}

/* Seconds of `command embed --model M --precision P --threads T files...`, output discarded. */
static double run_command(const char *command, const char *model, const char *precision,
                          int threads, char **files, int n)
{
    char thread_arg[16];
    snprintf(thread_arg, sizeof thread_arg, "%d", threads);   /* the bench's count, resolved */
    char **argv = calloc((size_t)n + 10, sizeof *argv);
    int a = 0;
    argv[a++] = (char *)command;
    argv[a++] = "embed";
    argv[a++] = "--model";
    argv[a++] = (char *)model;
    argv[a++] = "--precision";
    argv[a++] = (char *)precision;
    argv[a++] = "--threads";
    argv[a++] = thread_arg;
    for (int i = 0; i < n; i++) argv[a++] = files[i];
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    double start = now();
    pid_t pid;
    int status = -1;
    if (posix_spawn(&pid, command, &actions, NULL, argv, environ) == 0)
        waitpid(pid, &status, 0);
    double seconds = now() - start;
    posix_spawn_file_actions_destroy(&actions);
    free(argv);
    if (!WIFEXITED(status) || (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 1)) {
        fprintf(stderr, "raddino_bench_embed: %s embed failed\n", command);
        exit(1);
    }
    return seconds;
}

/* The command waits passively in OpenMP unless the user chose a policy (cli/main.c says why);
 * the in-process timings here must run under the same policy to be comparable, so the bench
 * does the same: set it and start again once. */
static void same_openmp_wait_as_the_command(char **argv)
{
    if (getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
    same_openmp_wait_as_the_command(argv);
    const char *model = NULL, *precision = "bf16", *command = NULL, *folder = NULL;
    int threads = 0, repeats = 1, time_images = 0;
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--model") && value) model = argv[++i];
        else if (!strcmp(argv[i], "--precision") && value) precision = argv[++i];
        else if (!strcmp(argv[i], "--threads") && value) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && value) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--command") && value) command = argv[++i];
        else if (!strcmp(argv[i], "--time-images") && value) time_images = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--each")) verbose = true;
        else if (argv[i][0] != '-' && !folder) folder = argv[i];
        else folder = NULL, i = argc;
    }
    if (!model || !folder || repeats < 1 ||
        (strcmp(precision, "bf16") && strcmp(precision, "fp32"))) {
        fprintf(stderr, "usage: raddino_bench_embed --model DIR [--precision bf16|fp32] "
                        "[--threads N] [--repeats R] [--command PATH/raddino] [--time-images N] "
                        "[--each] FOLDER\n");
        return 2;
    }
    file_list files = {0};
    list_files(folder, &files);
    qsort(files.paths, (size_t)files.n, sizeof *files.paths, compare_strings);

    raddino_encoder *enc[2] = {
        open_encoder(model, RADDINO_PRECISION_FP32, threads),
        open_encoder(model, !strcmp(precision, "bf16") ? RADDINO_PRECISION_BF16
                                                       : RADDINO_PRECISION_FP32,
                     threads)};
    raddino_model_info info[2];
    raddino_encoder_info(enc[0], &info[0]);
    raddino_encoder_info(enc[1], &info[1]);
    int hidden = info[0].hidden;
    if (info[0].input_height <= 0) {
        fprintf(stderr, "raddino_bench_embed: the model's input size depends on the image\n");
        return 1;
    }
    size_t in_n = (size_t)3 * info[0].input_height * info[0].input_width;
    size_t tok_n = (size_t)info[0].tokens * hidden;
    float *cls = malloc(2 * (size_t)hidden * sizeof(float));
    float *tokens = malloc(tok_n * sizeof(float));
    char **good = calloc((size_t)files.n + 1, sizeof *good);
    float **pixels = calloc((size_t)files.n + 1, sizeof *pixels);
    double *cosines = calloc((size_t)files.n + 1, sizeof *cosines);
    int n = 0, skipped = 0;
    const char *worst = "";
    double worst_cosine = 2;
    /* Accuracy, and each image's network input for the forward-only timing. */
    for (int i = 0; i < files.n; i++) {
        raddino_image img;
        raddino_status st = raddino_image_load(files.paths[i], 0, &img);
        float *px = malloc(in_n * sizeof(float));
        if (!st.code) st = raddino_preprocess(enc[0], &img, NULL, px);
        if (!st.code) raddino_image_free(&img);
        if (!st.code) st = raddino_embed_file(enc[0], files.paths[i], cls, NULL);
        if (!st.code) st = raddino_embed_file(enc[1], files.paths[i], cls + hidden, NULL);
        if (st.code) {
            skipped++;
            free(px);
            continue;
        }
        cosines[n] = cosine(cls, cls + hidden, hidden);
        if (verbose) {
            printf("  %.7f  %s\n", cosines[n], files.paths[i]);
            fflush(stdout);
        }
        if (cosines[n] < worst_cosine) worst_cosine = cosines[n], worst = files.paths[i];
        good[n] = files.paths[i];
        pixels[n++] = px;
    }
    if (!n) {
        printf("no image under %s could be embedded (%d files skipped)\n", folder, skipped);
        return 1;
    }
    threads = raddino_encoder_threads(enc[1]);
    printf("model %s, %d threads, %d images under %s (%d other files skipped)\n", model,
           threads, n, folder, skipped);
    qsort(cosines, (size_t)n, sizeof *cosines, compare_doubles);
    double median = n % 2 ? cosines[n / 2] : 0.5 * (cosines[n / 2 - 1] + cosines[n / 2]);
    printf("%s (%s) vs fp32, CLS cosine: min %.7f, median %.7f, max %.7f  (min: %s)\n", precision,
           info[1].kernel, worst_cosine, median, cosines[n - 1], worst);
    fflush(stdout);

    /* Timings, interleaved image by image so that both see the same machine. */
    int loaded = n;
    if (time_images > 0 && time_images < n) n = time_images;
    double embed_s[2] = {0, 0}, forward_s[2] = {0, 0};
    raddino_encode_pixels(enc[0], 1, pixels[0], tokens);     /* warm-up */
    raddino_encode_pixels(enc[1], 1, pixels[0], tokens);
    for (int r = 0; r < repeats; r++)
        for (int i = 0; i < n; i++)
            for (int k = 0; k < 2; k++) {
                double t0 = now();
                raddino_embed_file(enc[k], good[i], cls, NULL);
                double t1 = now();
                raddino_encode_pixels(enc[k], 1, pixels[i], tokens);
                double t2 = now();
                embed_s[k] += t1 - t0;
                forward_s[k] += t2 - t1;
            }
    const char *names[2] = {"fp32", precision};
    for (int k = 0; k < 2; k++) {
        double e = embed_s[k] / (n * repeats), f = forward_s[k] / (n * repeats);
        printf("%-4s per image: embed path (raddino_embed_file) %.3f s, forward alone %.3f s, "
               "ratio %.3f\n", names[k], e, f, e / f);
    }
    fflush(stdout);
    for (int k = 0; k < 2; k++) raddino_encoder_close(enc[k]);

    if (command && n > 1) {
        double all[2] = {0, 0}, one[2] = {0, 0};
        for (int r = 0; r < repeats; r++)
            for (int k = 0; k < 2; k++) {
                all[k] += run_command(command, model, names[k], threads, good, n);
                one[k] += run_command(command, model, names[k], threads, good, 1);
            }
        for (int k = 0; k < 2; k++) {
            double per = (all[k] - one[k]) / repeats / (n - 1);
            double f = forward_s[k] / (n * repeats);
            /* "NAME batch 1: S s/image", the form bench/compare.sh reads. */
            printf("cmd-%s batch 1: %.3f s/image  (raddino embed, %d images minus 1, whole "
                   "process; forward alone %.3f s, ratio %.3f)\n",
                   names[k], per, n, f, per / f);
        }
    }
    for (int i = 0; i < loaded; i++) free(pixels[i]);
    for (int i = 0; i < files.n; i++) free(files.paths[i]);
    free(files.paths), free(good), free(pixels), free(cosines), free(cls), free(tokens);
    return 0;
}
