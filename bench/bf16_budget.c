/* bf16_budget.c — where bf16 loses accuracy: the error budget of the bf16 mode, per product
 * and per layer, on real images.
 *
 *   raddino_bf16_budget --model DIR [--threads N] [--detail LAYERS] IMAGE|FOLDER ...
 *
 * Every image is encoded in float32 (the reference) and then with one part of the network in
 * bf16 at a time, the rest float32; the CLS's distance from the reference, 1 - cosine, is the
 * share of that part (shares of independent rounding errors add up, which the "sum of the
 * parts" line checks against the whole bf16 run). Parts:
 *   - each product type (qkv, probs x values, proj, fc1, fc2) in every layer;
 *   - the same with only the weights rounded to bf16 (float32 kernel on rounded weights), so
 *     that weight rounding and activation rounding can be told apart;
 *   - each layer, all of its products;
 *   - the patch embedding;
 *   - with --detail N, each product of each of the first N layers on its own;
 *   - candidate plans: the patch embedding and the first 1, 2, 3 layers kept float32.
 * Also printed: all bf16 (every product, as before the precision plan) and the bf16 mode as
 * shipped (vit_product_kernel's plan). Figures are 1 - cosine in units of 1e-6: the worst image,
 * and the mean over the images.
 *
 * Uses the encoder's private modules (encoder_internal.h): the kernel sets are mixed product by
 * product, which the public API does not offer.
 */
#include "encoder_internal.h"

#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const product_names[VIT_PRODUCTS] = {"qkv", "probs x values", "proj", "fc1",
                                                        "fc2"};

typedef struct {
    char name[64];
    double worst, sum;      /* of 1 - cosine over the images */
    int images;
} part;

typedef struct {
    vit_config cfg;
    preprocess_config pre;
    vit_weights w, rounded;
    vit_packed_weights f32, bf16, planned, f32_rounded;
    vit_run_state *state;
    float *tokens, *reference;
    int threads;
    part *parts;
    int n_parts, cap_parts;
} study;

static void die(const char *what, raddino_status st)
{
    fprintf(stderr, "raddino_bf16_budget: %s: %s\n", what, st.message);
    exit(1);
}

static double one_minus_cosine(const float *a, const float *b, int n)
{
    double dot = 0, na = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return 1.0 - dot / sqrt(na * nb);
}

static float round_bf16(float x)
{
    uint32_t bits = (uint32_t)gemm_float_to_bf16(x) << 16;
    float y;
    memcpy(&y, &bits, sizeof y);
    return y;
}

/* A float32 copy of a [n] tensor rounded to bf16 (kept in `owned`, freed at exit). */
static const float *rounded_copy(const float *src, size_t n)
{
    float *dst = malloc(n * sizeof(float));
    if (!dst) die("rounded weights", (raddino_status){RADDINO_ERR_NOMEM, "out of memory"});
    for (size_t i = 0; i < n; i++) dst[i] = round_bf16(src[i]);
    return dst;
}

/* The layers' matrices rounded to bf16, everything else (biases, norms, patch embedding) as it
 * is: the float32 kernel on these weights sees only the weights' bf16 rounding. */
static void make_rounded_weights(study *s)
{
    int D = s->cfg.hidden, M = s->cfg.mlp;
    s->rounded = s->w;
    s->rounded.layers = calloc((size_t)s->cfg.layers, sizeof *s->rounded.layers);
    for (int l = 0; l < s->cfg.layers; l++) {
        vit_layer_weights *r = &s->rounded.layers[l];
        *r = s->w.layers[l];
        r->q_w = rounded_copy(r->q_w, (size_t)D * D);
        r->k_w = rounded_copy(r->k_w, (size_t)D * D);
        r->v_w = rounded_copy(r->v_w, (size_t)D * D);
        r->proj_w = rounded_copy(r->proj_w, (size_t)D * D);
        r->fc1_w = rounded_copy(r->fc1_w, (size_t)M * D);
        r->fc2_w = rounded_copy(r->fc2_w, (size_t)D * M);
    }
}

/* Which kernel set each product of each layer takes: 0 float32, 1 bf16, 2 float32 on rounded
 * weights. */
typedef struct {
    unsigned char choice[64][VIT_PRODUCTS];
    unsigned char patch;
} mix;

static void set_product(const study *s, vit_layer_packed_weights *lk, int l, vit_product p, int choice)
{
    const vit_packed_weights *from = choice == 1 ? &s->bf16 : choice == 2 ? &s->f32_rounded : &s->f32;
    const vit_layer_packed_weights *src = &from->layers[l];
    switch (p) {
    case VIT_QKV: lk->qkv = src->qkv; lk->qkv_bias = src->qkv_bias; break;
    case VIT_VALUES: lk->values = choice == 1 ? GEMM_AVX512_BF16 : GEMM_AVX512_F32; break;
    case VIT_PROJ: lk->proj = src->proj; break;
    case VIT_FC1: lk->fc1 = src->fc1; break;
    case VIT_FC2: lk->fc2 = src->fc2; break;
    default: break;
    }
}

/* CLS of the current image with the kernels chosen by m; returns 1 - cosine to the reference. */
static double run_mix(study *s, const float *pixels, const mix *m)
{
    vit_packed_weights k = s->f32;
    vit_layer_packed_weights layers[64];
    k.kernel = GEMM_AVX512_BF16;     /* the run state has the bf16 buffers */
    k.layers = layers;
    k.patch = m->patch == 1 ? s->bf16.patch : s->f32.patch;
    for (int l = 0; l < s->cfg.layers; l++) {
        layers[l] = s->f32.layers[l];
        for (int p = 0; p < VIT_PRODUCTS; p++) set_product(s, &layers[l], l, (vit_product)p, m->choice[l][p]);
    }
    raddino_status st = vit_forward(&s->cfg, &s->w, &k, s->state, pixels, s->tokens);
    if (st.code) die("forward", st);
    return one_minus_cosine(s->tokens, s->reference, s->cfg.hidden);
}

static double run_kernels(study *s, const float *pixels, const vit_packed_weights *k)
{
    vit_packed_weights copy = *k;
    copy.kernel = GEMM_AVX512_BF16;
    raddino_status st = vit_forward(&s->cfg, &s->w, &copy, s->state, pixels, s->tokens);
    if (st.code) die("forward", st);
    return one_minus_cosine(s->tokens, s->reference, s->cfg.hidden);
}

static void record(study *s, int index, const char *name, double d)
{
    if (index >= s->cap_parts) {
        s->cap_parts = 2 * index + 16;
        s->parts = realloc(s->parts, (size_t)s->cap_parts * sizeof *s->parts);
    }
    if (index >= s->n_parts) {
        memset(&s->parts[index], 0, sizeof s->parts[index]);
        snprintf(s->parts[index].name, sizeof s->parts[index].name, "%s", name);
        s->n_parts = index + 1;
    }
    part *p = &s->parts[index];
    p->worst = fmax(p->worst, d);
    p->sum += d;
    p->images++;
}

static void print_table(const study *s, const char *model)
{
    int images = s->n_parts ? s->parts[0].images : 0;
    printf("\n%s, %d images: 1 - CLS cosine against float32, x 1e-6\n", model, images);
    printf("%-44s %10s %10s\n", "in bf16", "worst", "mean");
    for (int i = 0; i < s->n_parts; i++)
        printf("%-44s %10.2f %10.2f\n", s->parts[i].name, s->parts[i].worst * 1e6,
               s->parts[i].sum / s->parts[i].images * 1e6);
    fflush(stdout);
}

static bool load_pixels(const study *s, const char *path, float **pixels, int *h, int *w)
{
    raddino_image img;
    raddino_load_options opts = {0};
    raddino_status st = raddino_image_load_ex(path, &opts, &img);
    if (st.code) {
        fprintf(stderr, "skipped %s\n", st.message);
        return false;
    }
    preprocess_output_size(&s->pre, img.width, img.height, w, h);
    uint8_t *crop = malloc((size_t)*w * *h * 3);
    *pixels = malloc((size_t)3 * *w * *h * sizeof(float));
    st = preprocess_crop(&s->pre, &img, crop, *w, *h);
    raddino_image_free(&img);
    if (!st.code) preprocess_normalize(&s->pre, crop, *w, *h, *pixels);
    free(crop);
    if (st.code) {
        fprintf(stderr, "skipped %s: %s\n", path, st.message);
        free(*pixels);
    }
    return !st.code;
}

static void study_image(study *s, const char *path, int detail, const char *model)
{
    float *pixels;
    int h, w;
    if (!load_pixels(s, path, &pixels, &h, &w)) return;
    if (h != 518 || w != 518) {
        fprintf(stderr, "skipped %s: input %dx%d\n", path, w, h);
        free(pixels);
        return;
    }
    int L = s->cfg.layers, n = 0;
    vit_packed_weights f32 = s->f32;
    f32.kernel = GEMM_AVX512_BF16;   /* the run state has the bf16 buffers; all is float32 */
    raddino_status st = vit_forward(&s->cfg, &s->w, &f32, s->state, pixels, s->reference);
    if (st.code) die("forward", st);
    char name[64];
    mix m;
    memset(&m, 0, sizeof m);
    for (int l = 0; l < L; l++) memset(m.choice[l], 1, VIT_PRODUCTS);
    m.patch = 1;
    double all = run_mix(s, pixels, &m);
    record(s, n++, "all bf16 (every product)", all);
    double planned = run_kernels(s, pixels, &s->planned);
    record(s, n++, "bf16 as shipped (the plan)", planned);
    for (int keep = 1; keep <= 3 && keep <= L; keep++) {
        memset(m.choice[keep - 1], 0, VIT_PRODUCTS);
        m.patch = 0;
        snprintf(name, sizeof name, "bf16 but patch + layers 0-%d float32", keep - 1);
        record(s, n++, name, run_mix(s, pixels, &m));
    }
    memset(&m, 0, sizeof m);
    m.patch = 1;
    record(s, n++, "patch embedding", run_mix(s, pixels, &m));
    double sum = 0;
    for (int p = 0; p < VIT_PRODUCTS; p++) {
        memset(&m, 0, sizeof m);
        for (int l = 0; l < L; l++) m.choice[l][p] = 1;
        double d = run_mix(s, pixels, &m);
        sum += d;
        snprintf(name, sizeof name, "%s, all layers", product_names[p]);
        record(s, n++, name, d);
    }
    record(s, n++, "sum of the products' shares", sum);
    for (int p = 0; p < VIT_PRODUCTS; p++) {
        if (p == VIT_VALUES) continue;
        memset(&m, 0, sizeof m);
        for (int l = 0; l < L; l++) m.choice[l][p] = 2;
        snprintf(name, sizeof name, "%s weights only, all layers", product_names[p]);
        record(s, n++, name, run_mix(s, pixels, &m));
    }
    memset(&m, 0, sizeof m);
    for (int l = 0; l < L; l++) {
        m.choice[l][VIT_QKV] = m.choice[l][VIT_PROJ] = m.choice[l][VIT_FC1] = m.choice[l][VIT_FC2] = 2;
    }
    record(s, n++, "all weights only (no activation rounding)", run_mix(s, pixels, &m));
    for (int l = 0; l < L; l++) {
        memset(&m, 0, sizeof m);
        memset(m.choice[l], 1, VIT_PRODUCTS);
        snprintf(name, sizeof name, "layer %d, all products", l);
        record(s, n++, name, run_mix(s, pixels, &m));
    }
    for (int l = 0; l < detail && l < L; l++)
        for (int p = 0; p < VIT_PRODUCTS; p++) {
            memset(&m, 0, sizeof m);
            m.choice[l][p] = 1;
            snprintf(name, sizeof name, "layer %d %s", l, product_names[p]);
            record(s, n++, name, run_mix(s, pixels, &m));
        }
    printf("%s: all bf16 %.7f, planned %.7f\n", path, 1 - all, 1 - planned);
    print_table(s, model);   /* so far: a long study can be read while it runs */
    free(pixels);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void study_path(study *s, const char *path, int detail, const char *model)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return;
    if (!S_ISDIR(sb.st_mode)) {
        study_image(s, path, detail, model);
        return;
    }
    DIR *dir = opendir(path);
    if (!dir) return;
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, (n + 1) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(dir);
    qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n; i++) {
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, names[i]);
        study_path(s, child, detail, model);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    int detail = 0;
    study s;
    memset(&s, 0, sizeof s);
    s.threads = 2;
    int first = argc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) s.threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--detail") && i + 1 < argc) detail = atoi(argv[++i]);
        else {
            first = i;
            break;
        }
    }
    if (!model || first >= argc) {
        fprintf(stderr, "usage: raddino_bf16_budget --model DIR [--threads N] [--detail LAYERS] "
                        "IMAGE|FOLDER ...\n");
        return 2;
    }
    if (!gemm_cpu_has_avx512_bf16()) {
        printf("this CPU has no AVX512_BF16: nothing to study\n");
        return 0;
    }
    omp_set_num_threads(s.threads);
    char path[4096];
    safetensors_file file;
    snprintf(path, sizeof path, "%s/config.json", model);
    raddino_status st = config_load_model(path, &s.cfg);
    if (st.code) die(path, st);
    snprintf(path, sizeof path, "%s/preprocessor_config.json", model);
    st = config_load_preprocess(path, &s.pre);
    if (st.code) die(path, st);
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    st = safetensors_open(path, &file);
    if (!st.code) st = weights_load(&file, &s.cfg, &s.w);
    if (st.code) die(path, st);
    if (s.cfg.layers > 64) die(path, (raddino_status){RADDINO_ERR_ARGUMENT, "too many layers"});
    make_rounded_weights(&s);
    st = vit_packed_weights_create_uniform(&s.cfg, &s.w, GEMM_AVX512_F32, &s.f32);
    if (!st.code) st = vit_packed_weights_create_uniform(&s.cfg, &s.w, GEMM_AVX512_BF16, &s.bf16);
    if (!st.code) st = vit_packed_weights_create(&s.cfg, &s.w, GEMM_AVX512_BF16, false, &s.planned);
    if (!st.code)
        st = vit_packed_weights_create_uniform(&s.cfg, &s.rounded, GEMM_AVX512_F32, &s.f32_rounded);
    if (!st.code) st = vit_state_create(&s.cfg, GEMM_AVX512_BF16, s.threads, 518, 518, &s.state);
    if (st.code) die("kernels", st);
    size_t T = 1 + (size_t)(518 / s.cfg.patch) * (518 / s.cfg.patch);
    s.tokens = malloc(T * s.cfg.hidden * sizeof(float));
    s.reference = malloc(T * s.cfg.hidden * sizeof(float));
    for (int i = first; i < argc; i++) study_path(&s, argv[i], detail, model);
    vit_state_free(s.state);
    vit_packed_weights_free(&s.f32);
    vit_packed_weights_free(&s.bf16);
    vit_packed_weights_free(&s.planned);
    vit_packed_weights_free(&s.f32_rounded);
    for (int l = 0; l < s.cfg.layers; l++) {
        const vit_layer_weights *r = &s.rounded.layers[l];
        const float *copies[6] = {r->q_w, r->k_w, r->v_w, r->proj_w, r->fc1_w, r->fc2_w};
        for (int i = 0; i < 6; i++) free((void *)copies[i]);
    }
    free(s.rounded.layers);
    weights_free(&s.w);
    safetensors_close(&file);
    free(s.tokens), free(s.reference), free(s.parts);
    return 0;
}
