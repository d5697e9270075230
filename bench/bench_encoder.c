/* bench_encoder.c — how fast is the encoder, and how close to what its GEMMs alone allow?
 *
 *   raddino_bench --model DIR [--threads N] [--batch 1,8] [--repeats R]
 *                 [--kernels openblas,fp32,bf16] [--compare-images DIR]
 *                 [--pixels FILE.f32 --out TOKENS.f32]
 *
 * For each kernel (OpenBLAS fp32, our AVX-512 fp32, our AVX-512 bf16; those the CPU lacks are
 * skipped with a note) and each batch size: median seconds per image over R timed runs after
 * one warm-up, the GFLOP/s that makes, and the peak RSS of a fresh process state (each kernel is
 * timed in a child process so that one's memory does not count against the next). Then the
 * time the same sequence of matrix products (every sgemm of the forward pass at its exact
 * shapes through OpenBLAS, nothing else) takes on the same threads: the bound set by the GEMMs
 * alone. bf16 is also compared with fp32 on the benchmark input (CLS cosine, max abs), and with
 * --compare-images DIR on every image in DIR (the golden X-rays, say): the smallest CLS cosine
 * and the largest difference.
 * With --pixels, encodes that raw [3, H, W] float32 tensor and writes all its tokens as raw
 * float32 to --out, for comparison with ../shared/bench/torch_vit.py --pixels.
 */
#include "encoder_internal.h"   /* vit_product_kernel: the bf16 mode's precision plan */
#include "peak.h"
#include "raddino_encoder.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdbool.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

typedef struct {
    const char *model, *pixels, *out, *compare_dir;
    const char *kernels;
    int threads, repeats;
    int batches[8], n_batches;
} bench_options;

typedef struct {
    const char *name;
    int precision, gemm;
} bench_kernel;

static const bench_kernel all_kernels[] = {
    {"openblas", RADDINO_PRECISION_FP32, RADDINO_GEMM_BLAS},
    {"fp32", RADDINO_PRECISION_FP32, RADDINO_GEMM_AVX512},
    {"bf16", RADDINO_PRECISION_BF16, RADDINO_GEMM_AUTO},
};

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

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* Multiply-adds x 2 of one forward pass: the GEMMs (patch embedding, q/k/v, attention scores
 * and context, output projection, MLP). Element-wise work is not counted. */
static double forward_flops(const raddino_model_info *m)
{
    double T = m->tokens, P = T - 1, D = m->hidden, M = m->mlp;
    double patch_len = (double)m->channels * m->patch * m->patch;
    double per_layer = 2 * T * D * 3 * D + 2 * 2 * T * T * D + 2 * T * D * D + 2 * 2 * T * D * M;
    return 2 * P * patch_len * D + m->layers * per_layer;
}

/* The fastest the bf16 mode could run if every product ran at its instruction's peak: the
 * precision plan (vit_product_kernel) keeps some products float32 (the patch embedding, layer
 * 0, layer 1's q/k/v) and attention's q k^T is float32 in every layer (its rounding costs the
 * CLS too much, see attention.c); those run at the FMA peak, the rest at the vdpbf16ps peak.
 * Returns GFLOP/s; *fp32_share = the float32 share of the FLOPs. */
static double plan_bound_gflops(const raddino_model_info *m, double peak_bf16, double peak_fp32,
                                double *fp32_share)
{
    double T = m->tokens, P = T - 1, D = m->hidden, M = m->mlp;
    double patch_len = (double)m->channels * m->patch * m->patch;
    double flops[VIT_PRODUCTS] = {[VIT_QKV] = 2 * T * D * 3 * D, [VIT_VALUES] = 2 * T * T * D,
                                  [VIT_PROJ] = 2 * T * D * D, [VIT_FC1] = 2 * T * D * M,
                                  [VIT_FC2] = 2 * T * D * M};
    vit_config cfg = {0};
    double f32 = 2 * T * T * D * m->layers, bf = 0;   /* q k^T */
    if (vit_product_kernel(&cfg, GEMM_AVX512_BF16, -1, VIT_QKV) == GEMM_AVX512_BF16)
        bf += 2 * P * patch_len * D;
    else
        f32 += 2 * P * patch_len * D;
    for (int l = 0; l < m->layers; l++)
        for (int p = 0; p < VIT_PRODUCTS; p++) {
            if (vit_product_kernel(&cfg, GEMM_AVX512_BF16, l, (vit_product)p) == GEMM_AVX512_BF16)
                bf += flops[p];
            else
                f32 += flops[p];
        }
    *fp32_share = f32 / (f32 + bf);
    return (f32 + bf) / (f32 / peak_fp32 + bf / peak_bf16);
}

/* The forward pass's matrix products alone, at the same shapes and in the same order. */
static double gemm_only_seconds(const raddino_model_info *m)
{
    int T = m->tokens, P = T - 1, D = m->hidden, M = m->mlp, hd = D / m->heads;
    int patch_len = m->channels * m->patch * m->patch;
    size_t big = (size_t)T * (M > T ? M : T);
    float *a = calloc(big, sizeof(float)), *b = calloc(big, sizeof(float));
    float *c = calloc(big, sizeof(float)), *w = calloc((size_t)D * M, sizeof(float));
    if (!a || !b || !c || !w) {
        fprintf(stderr, "raddino_bench: out of memory for the GEMM bound\n");
        exit(1);
    }
    double start = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, D, patch_len, 1, a, patch_len, w,
                patch_len, 0, c, D);
    for (int l = 0; l < m->layers; l++) {
        for (int i = 0; i < 3; i++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, D, D, 1, a, D, w, D, 0, c, D);
        for (int h = 0; h < m->heads; h++) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1, a + h * hd, D,
                        b + h * hd, D, 0, c, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1, c, T, b + h * hd,
                        D, 0, a + h * hd, D);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, D, D, 1, a, D, w, D, 0, c, D);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, M, D, 1, a, D, w, D, 0, c, M);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, D, M, 1, c, M, w, M, 0, b, D);
    }
    double seconds = now() - start;
    free(a), free(b), free(c), free(w);
    return seconds;
}

static void fill_pixels(float *p, size_t n)
{
    uint64_t state = 0x9e3779b97f4a7c15ull;   /* fixed: every run encodes the same input */
    for (size_t i = 0; i < n; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((double)(state >> 40) / (double)(1 << 24) * 4.0 - 2.0);
    }
}

static int encode_to_file(raddino_encoder *enc, const raddino_model_info *m,
                          const bench_options *o)
{
    size_t in_n = (size_t)3 * m->input_height * m->input_width;
    size_t out_n = (size_t)m->tokens * m->hidden;
    float *pixels = malloc(in_n * sizeof(float)), *tokens = malloc(out_n * sizeof(float));
    FILE *f = fopen(o->pixels, "rb");
    if (!pixels || !tokens || !f || fread(pixels, sizeof(float), in_n, f) != in_n) {
        fprintf(stderr, "raddino_bench: %s: cannot read %zu floats\n", o->pixels, in_n);
        return 1;
    }
    fclose(f);
    raddino_status st = raddino_encode_pixels(enc, 1, pixels, tokens);
    if (st.code) {
        fprintf(stderr, "raddino_bench: %s\n", st.message);
        return 1;
    }
    f = fopen(o->out, "wb");
    if (!f || fwrite(tokens, sizeof(float), out_n, f) != out_n || fclose(f) != 0) {
        fprintf(stderr, "raddino_bench: %s: cannot write\n", o->out);
        return 1;
    }
    printf("wrote %zu tokens x %d to %s\n", (size_t)m->tokens, m->hidden, o->out);
    free(pixels), free(tokens);
    return 0;
}

static raddino_encoder *open_encoder(const bench_options *o, const bench_kernel *k)
{
    raddino_encoder_params params = raddino_encoder_default_params();
    params.n_threads = o->threads;
    params.precision = k->precision;
    params.gemm = k->gemm;
    raddino_encoder *enc;
    raddino_status st = raddino_encoder_open(o->model, &params, &enc);
    if (st.code) {
        printf("%-8s skipped: %s\n", k->name, st.message);
        return NULL;
    }
    raddino_model_info m;
    raddino_encoder_info(enc, &m);
    if (k->precision == RADDINO_PRECISION_BF16 && m.precision != RADDINO_PRECISION_BF16) {
        printf("%-8s skipped: this CPU has no AVX512_BF16\n", k->name);
        raddino_encoder_close(enc);
        return NULL;
    }
    return enc;
}

/* Times one kernel at every batch size; writes image 0's CLS to cls_out. Runs in a child. */
static int time_kernel(const bench_options *o, const bench_kernel *k, float *cls_out)
{
    raddino_encoder *enc = open_encoder(o, k);
    if (!enc) return 0;
    raddino_model_info m;
    raddino_encoder_info(enc, &m);
    double flops = forward_flops(&m);
    /* The peak of this kernel's instruction, measured here, in the child, just before its
     * timings (libgomp's threads do not survive a fork, so the parent runs no parallel region
     * before the children). */
    bool bf16 = k->precision == RADDINO_PRECISION_BF16;
    int threads = o->threads ? o->threads : omp_get_num_procs();
    double peak = peak_gflops(bf16 ? PEAK_BF16 : PEAK_FP32, threads, 0.5);
    if (peak > 0)
        printf("%-8s peak on %d threads: %s zmm %.1f GFLOP/s (register-only loop, 24 chains, "
               "best of 3)\n", k->name, threads, bf16 ? "vdpbf16ps" : "vfmadd231ps", peak);
    double plan_bound = 0, fma = 0, share = 0;
    if (bf16 && peak > 0) {
        fma = peak_gflops(PEAK_FP32, threads, 0.5);
        plan_bound = plan_bound_gflops(&m, peak, fma, &share);
        printf("%-8s peak on %d threads: vfmadd231ps zmm %.1f GFLOP/s; the precision plan keeps "
               "%.1f%% of the FLOPs float32, so its bound is %.1f GFLOP/s = %.3f of the "
               "vdpbf16ps peak\n", k->name, threads, fma, 100 * share, plan_bound,
               plan_bound / peak);
    }
    size_t in_n = (size_t)3 * m.input_height * m.input_width;
    size_t out_n = (size_t)m.tokens * m.hidden;
    for (int b = 0; b < o->n_batches; b++) {
        int batch = o->batches[b];
        float *pixels = malloc(batch * in_n * sizeof(float));
        float *tokens = malloc(batch * out_n * sizeof(float));
        double *t = malloc((size_t)o->repeats * sizeof *t);
        if (!pixels || !tokens || !t) return 1;
        fill_pixels(pixels, batch * in_n);
        raddino_encode_pixels(enc, 1, pixels, tokens);   /* warm-up */
        memcpy(cls_out, tokens, (size_t)m.hidden * sizeof(float));
        for (int r = 0; r < o->repeats; r++) {
            double start = now();
            raddino_status st = raddino_encode_pixels(enc, batch, pixels, tokens);
            if (st.code) {
                fprintf(stderr, "raddino_bench: %s\n", st.message);
                return 1;
            }
            t[r] = (now() - start) / batch;
        }
        double s = median(t, o->repeats), best = t[0];   /* median() sorted t */
        printf("%-8s batch %d: %.3f s/image  %6.1f GFLOP/s  peak RSS %4.0f MB  (%s)\n", k->name,
               batch, s, flops / s * 1e-9, peak_rss_mb(), m.kernel);
        /* Against the arithmetic peak of the kernel's instruction, on the same threads,
         * measured again after the timings: a neighbour that ran during the first measurement
         * lowers it, so the larger of the two counts. */
        if (peak > 0) {
            double again = peak_gflops(bf16 ? PEAK_BF16 : PEAK_FP32, threads, 0.5);
            printf("%-8s peak again after batch %d: %.1f GFLOP/s (the larger counts)\n", k->name,
                   batch, again);
            peak = again > peak ? again : peak;
            if (bf16) {
                again = peak_gflops(PEAK_FP32, threads, 0.5);
                fma = again > fma ? again : fma;
                plan_bound = plan_bound_gflops(&m, peak, fma, &share);
            }
        }
        if (peak > 0)
            printf("%-8s batch %d: median %.1f GFLOP/s = %.3f of the %s peak %.1f; best of %d "
                   "%.1f GFLOP/s = %.3f\n",
                   k->name, batch, flops / s * 1e-9, flops / s * 1e-9 / peak,
                   bf16 ? "vdpbf16ps" : "vfmadd231ps", peak,
                   o->repeats, flops / best * 1e-9, flops / best * 1e-9 / peak);
        if (plan_bound > 0)
            printf("%-8s batch %d: median %.3f, best %.3f of the precision plan's bound %.1f "
                   "(vfmadd231ps peak %.1f)\n",
                   k->name, batch, flops / s * 1e-9 / plan_bound, flops / best * 1e-9 / plan_bound,
                   plan_bound, fma);
        fflush(stdout);
        free(t), free(pixels), free(tokens);
    }
    raddino_encoder_close(enc);
    return 0;
}

/* Each kernel in its own child process: peak RSS is then that kernel's alone. The child hands
 * image 0's CLS back through a pipe for the bf16-vs-fp32 comparison. */
static int time_kernel_in_child(const bench_options *o, const bench_kernel *k, float *cls,
                                int hidden, bool *have_cls)
{
    int fds[2];
    if (pipe(fds) != 0) return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        close(fds[0]);
        float *mine = calloc((size_t)hidden, sizeof(float));
        int rc = mine ? time_kernel(o, k, mine) : 1;
        ssize_t bytes = (ssize_t)((size_t)hidden * sizeof(float));
        if (mine && write(fds[1], mine, (size_t)bytes) != bytes) rc = 1;
        fflush(stdout);
        _exit(rc);
    }
    close(fds[1]);
    size_t want = (size_t)hidden * sizeof(float), got = 0;
    ssize_t n;
    while (got < want && (n = read(fds[0], (char *)cls + got, want - got)) > 0) got += (size_t)n;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    *have_cls = got == want;
    for (int i = 0; *have_cls && i < hidden; i++) *have_cls = cls[i] != 0.0f || i > 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* Cosine of a and b; *max_abs = max(*max_abs, largest |a - b|). */
static double cls_cosine(const float *a, const float *b, int n, double *max_abs)
{
    double dot = 0, na = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
        *max_abs = fmax(*max_abs, fabs((double)a[i] - b[i]));
    }
    return dot / sqrt(na * nb);
}

static void compare_cls(const float *a, const float *b, int n)
{
    double max_abs = 0, cosine = cls_cosine(a, b, n, &max_abs);
    printf("bf16 vs fp32 on the timing input (uniform noise pixels): CLS cosine %.7f, "
           "max abs %.3g\n", cosine, max_abs);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* bf16 against fp32 on every image of a folder that loads (others are skipped): the smallest
 * CLS cosine, with its file, and the largest absolute difference. */
static int compare_on_images(const bench_options *o, int hidden)
{
    DIR *dir = opendir(o->compare_dir);
    if (!dir) {
        printf("bf16 vs fp32 on images: cannot open %s\n", o->compare_dir);
        return 1;
    }
    char *names[512];
    int n = 0;
    for (struct dirent *e; n < 512 && (e = readdir(dir));)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(dir);
    qsort(names, (size_t)n, sizeof names[0], compare_names);
    raddino_encoder *fp32 = open_encoder(o, &all_kernels[1]);
    raddino_encoder *bf16 = fp32 ? open_encoder(o, &all_kernels[2]) : NULL;
    float *a = malloc((size_t)hidden * sizeof(float)), *b = malloc((size_t)hidden * sizeof(float));
    double worst = 2, max_abs = 0;
    int images = 0;
    const char *worst_name = "";
    for (int i = 0; bf16 && a && b && i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", o->compare_dir, names[i]);
        if (raddino_embed_file(fp32, path, a, NULL).code ||
            raddino_embed_file(bf16, path, b, NULL).code)
            continue;
        double cosine = cls_cosine(a, b, hidden, &max_abs);
        if (cosine < worst) worst = cosine, worst_name = names[i];
        images++;
    }
    if (images)
        printf("bf16 vs fp32 on %d images in %s: min CLS cosine %.7f (%s), max abs %.3g\n",
               images, o->compare_dir, worst, worst_name, max_abs);
    else
        printf("bf16 vs fp32 on images: none compared in %s\n", o->compare_dir);
    if (fp32) raddino_encoder_close(fp32);
    if (bf16) raddino_encoder_close(bf16);
    for (int i = 0; i < n; i++) free(names[i]);
    free(a), free(b);
    return 0;
}

static int run_timings(const bench_options *o)
{
    raddino_encoder *enc = open_encoder(o, &all_kernels[0]);
    if (!enc) return 1;
    raddino_model_info m;
    raddino_encoder_info(enc, &m);
    raddino_encoder_close(enc);
    double flops = forward_flops(&m);
    printf("model: hidden %d, layers %d, heads %d, mlp %d, input %dx%d, %d tokens\n", m.hidden,
           m.layers, m.heads, m.mlp, m.input_width, m.input_height, m.tokens);
    int threads = o->threads ? o->threads : omp_get_num_procs();
    printf("threads: %d, GEMM work per image: %.1f GFLOP (2 per multiply-add of every product: "
           "patch embedding, q/k/v, q k^T, probabilities x values, projection, MLP)\n",
           threads, flops * 1e-9);
    (void)threads;
    float *cls[3];
    bool have[3] = {false, false, false};
    for (int i = 0; i < 3; i++) {
        cls[i] = calloc((size_t)m.hidden, sizeof(float));
        if (!strstr(o->kernels, all_kernels[i].name)) continue;
        if (time_kernel_in_child(o, &all_kernels[i], cls[i], m.hidden, &have[i]) != 0) return 1;
    }
    if (have[1] && have[2]) compare_cls(cls[2], cls[1], m.hidden);
    else if (have[0] && have[2]) compare_cls(cls[2], cls[0], m.hidden);
    for (int i = 0; i < 3; i++) free(cls[i]);
    if (o->compare_dir && have[2]) compare_on_images(o, m.hidden);

    omp_set_num_threads(o->threads ? o->threads : omp_get_num_procs());
    gemm_only_seconds(&m);   /* warm-up */
    double *t = malloc((size_t)o->repeats * sizeof *t);
    for (int r = 0; r < o->repeats; r++) t[r] = gemm_only_seconds(&m);
    double s = median(t, o->repeats);
    printf("GEMMs alone (OpenBLAS sgemm, same shapes): %.3f s/image  %.1f GFLOP/s\n", s,
           flops / s * 1e-9);
    free(t);
    return 0;
}

static int parse_options(int argc, char **argv, bench_options *o)
{
    memset(o, 0, sizeof *o);
    o->repeats = 3;
    o->kernels = "openblas,fp32,bf16";
    o->batches[0] = 1;
    o->n_batches = 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) return -1;
        if (!value) return -1;
        i++;
        if (!strcmp(arg, "--model")) o->model = value;
        else if (!strcmp(arg, "--threads")) o->threads = atoi(value);
        else if (!strcmp(arg, "--repeats")) o->repeats = atoi(value);
        else if (!strcmp(arg, "--pixels")) o->pixels = value;
        else if (!strcmp(arg, "--out")) o->out = value;
        else if (!strcmp(arg, "--kernels")) o->kernels = value;
        else if (!strcmp(arg, "--compare-images")) o->compare_dir = value;
        else if (!strcmp(arg, "--batch")) {
            o->n_batches = 0;
            for (const char *p = value; *p && o->n_batches < 8;) {
                int v = atoi(p);
                if (v <= 0 || v > 64) return -1;
                o->batches[o->n_batches++] = v;
                p = strchr(p, ',');
                if (!p) break;
                p++;
            }
        } else return -1;
    }
    if (!o->model || o->repeats < 1 || o->threads < 0 || (!o->pixels != !o->out)) return -1;
    return 0;
}

int main(int argc, char **argv)
{
    bench_options o;
    if (parse_options(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: raddino_bench --model DIR [--threads N] [--batch 1,8] "
                        "[--repeats R] [--kernels openblas,fp32,bf16] "
                        "[--compare-images DIR] [--pixels FILE.f32 --out TOKENS.f32]\n");
        return 2;
    }
    if (!o.pixels) return run_timings(&o);
    const bench_kernel *k = &all_kernels[1];
    for (int i = 0; i < 3; i++)
        if (!strcmp(o.kernels, all_kernels[i].name)) k = &all_kernels[i];
    raddino_encoder *enc = open_encoder(&o, k);
    if (!enc) return 1;
    raddino_model_info m;
    raddino_encoder_info(enc, &m);
    int rc = encode_to_file(enc, &m, &o);
    raddino_encoder_close(enc);
    return rc;
}
