/* vit.c — the DINOv2 ViT forward pass in float32, read top to bottom:
 *
 *   patches = im2col(pixels)                      [P, C*p*p]
 *   x[1:]   = patches W_patch^T + b_patch         [P, D]
 *   x[0]    = cls_token;  x += position table     [T, D]      T = 1 + P
 *   per layer:
 *     h = LN1(x);  q, k, v = h Wq^T + bq, ...
 *     per head: ctx_h = softmax(q_h k_h^T / sqrt(hd)) v_h
 *     x += ls1 * (ctx Wo^T + bo)
 *     h = LN2(x);  x += ls2 * (gelu(h W1^T + b1) W2^T + b2)
 *   tokens = LN(x)
 *
 * Matrix products go through gemm.c: our AVX-512 kernels (float32 or bf16) on weights packed
 * once at load, or OpenBLAS (the OpenMP build, so its threads and ours are one pool) on other
 * CPUs. Element-wise loops are parallelised with OpenMP over rows. Every buffer lives in the
 * run state, allocated once per input size: a forward pass allocates nothing.
 */
#include "encoder_status.h"
#include "vit.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The attention matrix of one head is tokens^2 floats: 16384 patches (e.g. a 1792x1792 input)
 * need 1 GiB for it. Larger inputs are refused rather than attempted. */
#define VIT_MAX_PATCHES 16384

struct vit_run_state {
    vit_config cfg;
    int input_h, input_w;
    int grid_h, grid_w;
    int n_patches, n_tokens;
    float *pos;             /* [T, D] position table for this grid */
    const vit_weights *pos_weights;   /* the weights `pos` was computed from */
    float *patches;         /* [P, C*p*p] */
    float *x;               /* [T, D] residual stream */
    float *h;               /* [T, D] LayerNorm output */
    float *qkv;             /* [T, 3D]: q | k | v side by side */
    float *ctx;             /* [T, D] attention context, heads side by side */
    float *branch;          /* [T, D] output of the attention or MLP branch */
    float *mlp;             /* [T, M] */
    gemm_kernel kernel;
    int threads;
    float *scores;          /* GEMM_BLAS: [T, T] one head's attention matrix */
    void *attention_scratch;    /* our kernels: packed keys/values, per-thread score blocks */
    uint16_t *bf16_scratch;     /* GEMM_AVX512_BF16: activations converted to bf16 */
    uint16_t *mlp_bf16;         /* GEMM_AVX512_BF16: [T, M (even)] gelu(fc1) as fc2's input */
    vit_stage_hook hook;
    void *hook_user;
    struct {
        void *p;
        size_t bytes;
    } blocks[16];           /* every buffer above, for vit_state_free */
    int n_blocks;
};

/* The buffers are mappings of their own, left out of forked children (MADV_DONTFORK): a
 * compressed DICOM file decodes in a child that another thread forks (dicom.cpp), and a fork
 * write-protects every page of the parent, so a pass running beside it would take a
 * copy-on-write fault on each page it writes next, megabytes of them per fork. The child never
 * touches them. Sanitizer builds use malloc, which AddressSanitizer checks (and they do not
 * fork to decode). */
static void *state_alloc(vit_run_state *s, size_t bytes)
{
    if (s->n_blocks == (int)(sizeof s->blocks / sizeof s->blocks[0]) || !bytes) return NULL;
#if defined(__SANITIZE_ADDRESS__)
    void *p = malloc(bytes);
    if (!p) return NULL;
#else
    bytes = (bytes + 4095) & ~(size_t)4095;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    madvise(p, bytes, MADV_DONTFORK);   /* a failure only costs the faults */
#endif
    s->blocks[s->n_blocks].p = p;
    s->blocks[s->n_blocks].bytes = bytes;
    s->n_blocks++;
    return p;
}

static float *alloc_floats(vit_run_state *s, size_t n)
{
    return state_alloc(s, n * sizeof(float));
}

raddino_status vit_state_create(const vit_config *cfg, gemm_kernel kernel, int threads,
                                int input_h, int input_w, vit_run_state **out)
{
    *out = NULL;
    int grid_h = input_h / cfg->patch, grid_w = input_w / cfg->patch;
    if (grid_h <= 0 || grid_w <= 0 || (int64_t)grid_h * grid_w > VIT_MAX_PATCHES)
        return status_error(RADDINO_ERR_ARGUMENT, "input %dx%d gives a patch grid out of range",
                            input_w, input_h);
    vit_run_state *s = calloc(1, sizeof *s);
    if (!s) return status_error(RADDINO_ERR_NOMEM, "out of memory for the run state");
    s->cfg = *cfg;
    s->kernel = kernel;
    s->threads = threads > 0 ? threads : 1;
    s->input_h = input_h;
    s->input_w = input_w;
    s->grid_h = grid_h;
    s->grid_w = grid_w;
    s->n_patches = grid_h * grid_w;
    s->n_tokens = 1 + s->n_patches;
    size_t T = (size_t)s->n_tokens, D = (size_t)cfg->hidden, M = (size_t)cfg->mlp;
    size_t patch_len = (size_t)cfg->channels * cfg->patch * cfg->patch;
    s->pos = alloc_floats(s, T * D);
    s->patches = alloc_floats(s, (size_t)s->n_patches * patch_len);
    s->x = alloc_floats(s, T * D);
    s->h = alloc_floats(s, T * D);
    s->qkv = alloc_floats(s, T * 3 * D);
    s->ctx = alloc_floats(s, T * D);
    s->branch = alloc_floats(s, T * D);
    s->mlp = alloc_floats(s, T * M);
    bool ok = s->pos && s->patches && s->x && s->h && s->qkv && s->ctx && s->branch && s->mlp;
    if (kernel == GEMM_BLAS) {
        s->scores = alloc_floats(s, T * T);
        ok = ok && s->scores;
    } else {
        s->attention_scratch =
            state_alloc(s, gemm_attention_scratch_bytes((int)T, (int)D, cfg->heads, s->threads));
        ok = ok && s->attention_scratch;
    }
    if (kernel == GEMM_AVX512_BF16) {
        size_t widest = M > patch_len ? M : patch_len;
        widest = widest > D ? widest : D;
        s->bf16_scratch = state_alloc(s, T * (widest + 2) * sizeof(uint16_t));
        s->mlp_bf16 = state_alloc(s, T * (M + 1) * sizeof(uint16_t));
        ok = ok && s->bf16_scratch && s->mlp_bf16;
    }
    if (!ok) {
        vit_state_free(s);
        return status_error(RADDINO_ERR_NOMEM, "out of memory for the run state (%zu tokens)",
                            T);
    }
    *out = s;
    return status_ok();
}

void vit_state_free(vit_run_state *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_blocks; i++) {
#if defined(__SANITIZE_ADDRESS__)
        free(s->blocks[i].p);
#else
        munmap(s->blocks[i].p, s->blocks[i].bytes);
#endif
    }
    free(s);
}

void vit_state_set_hook(vit_run_state *s, vit_stage_hook hook, void *user)
{
    s->hook = hook;
    s->hook_user = user;
}

static void emit(const vit_run_state *s, const char *name, const float *data, int rows, int cols)
{
    if (s->hook) s->hook(s->hook_user, name, data, rows, cols);
}

/* ---- position table ------------------------------------------------------------------------ */

/* PyTorch's cubic convolution weights (a = -0.75) for fractional offset t, in float as
 * upsample_bicubic2d computes them. */
static void cubic_weights(float t, float w[4])
{
    const float a = -0.75f;
    float x1 = t + 1.0f, x2 = t, x3 = 1.0f - t, x4 = 2.0f - t;
    w[0] = ((a * x1 - 5.0f * a) * x1 + 8.0f * a) * x1 - 4.0f * a;
    w[1] = ((a + 2.0f) * x2 - (a + 3.0f)) * x2 * x2 + 1.0f;
    w[2] = ((a + 2.0f) * x3 - (a + 3.0f)) * x3 * x3 + 1.0f;
    w[3] = ((a * x4 - 5.0f * a) * x4 + 8.0f * a) * x4 - 4.0f * a;
}

/* Source tap positions and weights for output index i of an in -> out bicubic resize with
 * align_corners = false: source = scale * (i + 0.5) - 0.5, taps clamped to the edge. */
static void cubic_taps(int in, int out, int i, int taps[4], float w[4])
{
    float scale = (float)in / (float)out;
    float source = scale * ((float)i + 0.5f) - 0.5f;
    int base = (int)floorf(source);
    cubic_weights(source - (float)base, w);
    for (int j = 0; j < 4; j++) {
        int t = base - 1 + j;
        taps[j] = t < 0 ? 0 : (t > in - 1 ? in - 1 : t);
    }
}

void vit_position_embeddings(const vit_config *cfg, const vit_weights *w, int grid_h, int grid_w,
                             float *out)
{
    int D = cfg->hidden, th = w->table_h, tw = w->table_w;
    memcpy(out, w->pos_embed, (size_t)D * sizeof(float));      /* the CLS row is kept */
    if (th == grid_h && tw == grid_w) {
        memcpy(out + D, w->pos_embed + D, (size_t)th * tw * D * sizeof(float));
        return;
    }
    const float *table = w->pos_embed + D;       /* [th, tw, D] */
    #pragma omp parallel for schedule(static)
    for (int oy = 0; oy < grid_h; oy++) {
        int ty[4], tx[4];
        float wy[4], wx[4];
        cubic_taps(th, grid_h, oy, ty, wy);
        for (int ox = 0; ox < grid_w; ox++) {
            cubic_taps(tw, grid_w, ox, tx, wx);
            float *dst = out + (size_t)(1 + oy * grid_w + ox) * D;
            for (int d = 0; d < D; d++) {
                /* Interpolate along x within each of the four rows, then along y: PyTorch's
                 * order, so the float32 rounding is the same. */
                float rows[4];
                for (int j = 0; j < 4; j++) {
                    const float *r = table + (size_t)ty[j] * tw * D + d;
                    rows[j] = r[(size_t)tx[0] * D] * wx[0] + r[(size_t)tx[1] * D] * wx[1] +
                              r[(size_t)tx[2] * D] * wx[2] + r[(size_t)tx[3] * D] * wx[3];
                }
                dst[d] = rows[0] * wy[0] + rows[1] * wy[1] + rows[2] * wy[2] + rows[3] * wy[3];
            }
        }
    }
}

/* ---- building blocks ---------------------------------------------------------------------- */

/* x += scale * branch, row by row (scale is the LayerScale vector). */
static void residual_add(float *x, const float *branch, const float *scale, int rows, int D)
{
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * D;
        const float *br = branch + (size_t)r * D;
        for (int j = 0; j < D; j++) xr[j] += scale[j] * br[j];
    }
}

static void softmax_rows(float *s, int rows, int cols)
{
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        float *row = s + (size_t)r * cols;
        float max = row[0];
        for (int j = 1; j < cols; j++) max = row[j] > max ? row[j] : max;
        double sum = 0;
        for (int j = 0; j < cols; j++) {
            row[j] = expf(row[j] - max);
            sum += row[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < cols; j++) row[j] *= inv;
    }
}

/* ---- the network ------------------------------------------------------------------------ */

/* Flattens each patch channel-major (c, ky, kx), the order of the conv weight [D, C, p, p]. */
static void im2col(const vit_run_state *s, const float *pixels)
{
    int p = s->cfg.patch, C = s->cfg.channels, gw = s->grid_w;
    size_t H = (size_t)s->input_h, W = (size_t)s->input_w;
    size_t patch_len = (size_t)C * p * p;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < s->n_patches; n++) {
        int py = n / gw, px = n % gw;
        float *dst = s->patches + (size_t)n * patch_len;
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < p; ky++) {
                const float *src = pixels + (size_t)c * H * W + ((size_t)py * p + ky) * W +
                                   (size_t)px * p;
                memcpy(dst, src, (size_t)p * sizeof(float));
                dst += p;
            }
    }
}

static void embed(const vit_config *cfg, const vit_weights *w, const vit_packed_weights *kern,
                  vit_run_state *s, const float *pixels)
{
    int D = cfg->hidden;
    size_t patch_len = (size_t)cfg->channels * cfg->patch * cfg->patch;
    if (s->pos_weights != w) {
        vit_position_embeddings(cfg, w, s->grid_h, s->grid_w, s->pos);
        s->pos_weights = w;
    }
    im2col(s, pixels);
    gemm_linear(&kern->patch, s->patches, s->n_patches, patch_len, w->patch_b, s->x + D,
                (size_t)D, s->bf16_scratch);
    emit(s, "embeddings.patch", s->x + D, s->n_patches, D);
    memcpy(s->x, w->cls_token, (size_t)D * sizeof(float));
    size_t n = (size_t)s->n_tokens * D;
    for (size_t i = 0; i < n; i++) s->x[i] += s->pos[i];
    emit(s, "embeddings.out", s->x, s->n_tokens, D);
}

/* OpenBLAS attention for CPUs without AVX-512: one head at a time, the whole [T, T] score
 * matrix, threaded inside each sgemm. */
static void blas_attention(const vit_config *cfg, vit_run_state *s)
{
    int T = s->n_tokens, D = cfg->hidden, hd = D / cfg->heads;
    float scale = 1.0f / sqrtf((float)hd);
    for (int head = 0; head < cfg->heads; head++) {
        size_t off = (size_t)head * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, s->qkv + off,
                    3 * D, s->qkv + D + off, 3 * D, 0.0f, s->scores, T);
        softmax_rows(s->scores, T, T);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, s->scores, T,
                    s->qkv + 2 * D + off, 3 * D, 0.0f, s->ctx + off, D);
    }
}

static void attention(const vit_config *cfg, const vit_layer_weights *lw,
                      const vit_layer_packed_weights *lk, vit_run_state *s, const char *prefix)
{
    int T = s->n_tokens, D = cfg->hidden, hd = D / cfg->heads;
    size_t ld = (size_t)3 * D;
    if (lk->qkv.panels) {
        gemm_linear(&lk->qkv, s->h, T, (size_t)D, lk->qkv_bias, s->qkv, ld, s->bf16_scratch);
    } else {
        gemm_linear(&lk->q, s->h, T, (size_t)D, lw->q_b, s->qkv, ld, s->bf16_scratch);
        gemm_linear(&lk->k, s->h, T, (size_t)D, lw->k_b, s->qkv + D, ld, s->bf16_scratch);
        gemm_linear(&lk->v, s->h, T, (size_t)D, lw->v_b, s->qkv + 2 * D, ld, s->bf16_scratch);
    }
    char name[64];
    snprintf(name, sizeof name, "%s.qkv", prefix);
    emit(s, name, s->qkv, T, 3 * D);
    if (s->kernel == GEMM_BLAS)
        blas_attention(cfg, s);
    else
        gemm_attention(lk->values, s->qkv, s->qkv + D, s->qkv + 2 * D, ld, T, D, cfg->heads,
                       1.0f / sqrtf((float)hd), s->ctx, s->attention_scratch, s->threads);
    snprintf(name, sizeof name, "%s.attn_context", prefix);
    emit(s, name, s->ctx, T, D);
    gemm_linear(&lk->proj, s->ctx, T, (size_t)D, lw->proj_b, s->branch, (size_t)D,
                s->bf16_scratch);
    snprintf(name, sizeof name, "%s.attn_output", prefix);
    emit(s, name, s->branch, T, D);
}

static void mlp(const vit_config *cfg, const vit_layer_weights *lw, const vit_layer_packed_weights *lk,
                vit_run_state *s, const char *prefix)
{
    int T = s->n_tokens, D = cfg->hidden, M = cfg->mlp;
    char name[64];
    if (!s->hook) {
        /* GELU inside fc1's last pass; in bf16, fc1 hands fc2 its input already rounded. The
         * numbers are those of the steps below, which run when stages are being watched. */
        bool handoff = lk->fc1.kernel == GEMM_AVX512_BF16 && lk->fc2.kernel == GEMM_AVX512_BF16;
        gemm_linear_gelu(&lk->fc1, s->h, T, (size_t)D, lw->fc1_b, s->mlp, (size_t)M,
                         s->bf16_scratch, handoff ? s->mlp_bf16 : NULL);
        if (handoff)
            gemm_linear_bf16_input(&lk->fc2, s->mlp_bf16, T, lw->fc2_b, s->branch, (size_t)D);
        else
            gemm_linear(&lk->fc2, s->mlp, T, (size_t)M, lw->fc2_b, s->branch, (size_t)D,
                        s->bf16_scratch);
        return;
    }
    gemm_linear(&lk->fc1, s->h, T, (size_t)D, lw->fc1_b, s->mlp, (size_t)M, s->bf16_scratch);
    snprintf(name, sizeof name, "%s.fc1", prefix);
    emit(s, name, s->mlp, T, M);
    vector_gelu(s->mlp, (size_t)T * M);
    snprintf(name, sizeof name, "%s.gelu", prefix);
    emit(s, name, s->mlp, T, M);
    gemm_linear(&lk->fc2, s->mlp, T, (size_t)M, lw->fc2_b, s->branch, (size_t)D,
                s->bf16_scratch);
    snprintf(name, sizeof name, "%s.fc2", prefix);
    emit(s, name, s->branch, T, D);
}

static void layer(const vit_config *cfg, const vit_layer_weights *lw, const vit_layer_packed_weights *lk,
                  vit_run_state *s, int index)
{
    int T = s->n_tokens, D = cfg->hidden;
    char prefix[32], name[64];
    snprintf(prefix, sizeof prefix, "layer%d", index);

    vector_layer_norm(s->x, T, D, lw->norm1_w, lw->norm1_b, cfg->layer_norm_eps, s->h);
    snprintf(name, sizeof name, "%s.norm1", prefix);
    emit(s, name, s->h, T, D);
    attention(cfg, lw, lk, s, prefix);
    residual_add(s->x, s->branch, lw->ls1, T, D);
    snprintf(name, sizeof name, "%s.resid1", prefix);
    emit(s, name, s->x, T, D);

    vector_layer_norm(s->x, T, D, lw->norm2_w, lw->norm2_b, cfg->layer_norm_eps, s->h);
    snprintf(name, sizeof name, "%s.norm2", prefix);
    emit(s, name, s->h, T, D);
    mlp(cfg, lw, lk, s, prefix);
    residual_add(s->x, s->branch, lw->ls2, T, D);
    snprintf(name, sizeof name, "%s.out", prefix);
    emit(s, name, s->x, T, D);
}

raddino_status vit_forward(const vit_config *cfg, const vit_weights *w, const vit_packed_weights *kern,
                           vit_run_state *s, const float *pixels, float *tokens)
{
    if (cfg->hidden != s->cfg.hidden || cfg->mlp != s->cfg.mlp || cfg->patch != s->cfg.patch ||
        cfg->channels != s->cfg.channels)
        return status_error(RADDINO_ERR_ARGUMENT, "run state was made for another model");
    if (kern->kernel != s->kernel || kern->n_layers != cfg->layers)
        return status_error(RADDINO_ERR_ARGUMENT, "run state was made for another kernel");
    embed(cfg, w, kern, s, pixels);
    for (int i = 0; i < cfg->layers; i++) layer(cfg, &w->layers[i], &kern->layers[i], s, i);
    vector_layer_norm(s->x, s->n_tokens, cfg->hidden, w->norm_w, w->norm_b, cfg->layer_norm_eps,
                      tokens);
    emit(s, "last_hidden_state", tokens, s->n_tokens, cfg->hidden);
    return status_ok();
}

/* ---- kernels ---------------------------------------------------------------------------- */

static raddino_status pack(gemm_kernel kernel, bool release, const float *w, int n, int k,
                           gemm_matrix *out)
{
    raddino_status st = gemm_matrix_pack(kernel, w, n, k, (size_t)k, out);
    if (!st.code && release && kernel != GEMM_BLAS)
        gemm_release_source(w, (size_t)n * k * sizeof(float));
    return st;
}

/* The bf16 plan. bench/bf16_budget measured, on real X-rays with full-size random ViT-B
 * weights (seeds 1 and 2), what each product costs the CLS when it alone is bf16: the early
 * products dominate, because the residual stream is still small there and every later layer
 * carries their error on. With every product bf16, 1 - cosine reached 1.2e-4 on one image; the
 * patch embedding was a fifth of it, layer 0 half (qkv 40% of that), layer 1's qkv a tenth,
 * and the other 11 layers together less than layer 0. So these stay float32: the patch
 * embedding, every linear product of layer 0 and layer 1's qkv (about 5% of a bf16 pass); the
 * rest, including every probabilities x values product (1% of the error), is bf16. bf16x2/x3
 * splitting would not be cheaper here: vdpbf16ps does two products per lane where an FMA does
 * one, so two bf16 products cost what one float32 product costs. */
gemm_kernel vit_product_kernel(const vit_config *cfg, gemm_kernel kernel, int layer,
                               vit_product product)
{
    (void)cfg;
    if (kernel != GEMM_AVX512_BF16) return kernel;
    if (layer < 0) return GEMM_AVX512_F32;                          /* patch embedding */
    if (layer == 0 && product != VIT_VALUES) return GEMM_AVX512_F32;
    if (layer == 1 && product == VIT_QKV) return GEMM_AVX512_F32;
    return GEMM_AVX512_BF16;
}

/* The kernel of one product: the plan's choice, or `kernel` itself when not planned. */
static gemm_kernel product_kernel(const vit_config *cfg, gemm_kernel kernel, bool planned,
                                  int layer, vit_product product)
{
    return planned ? vit_product_kernel(cfg, kernel, layer, product) : kernel;
}

static raddino_status pack_layer(const vit_config *cfg, const vit_layer_weights *lw,
                                 gemm_kernel main_kernel, bool planned, int index, bool release,
                                 vit_layer_packed_weights *lk)
{
    int D = cfg->hidden, M = cfg->mlp;
    raddino_status st = status_ok();
    gemm_kernel kernel = product_kernel(cfg, main_kernel, planned, index, VIT_QKV);
    lk->values = product_kernel(cfg, main_kernel, planned, index, VIT_VALUES);
    if (kernel == GEMM_BLAS) {
        st = pack(kernel, release, lw->q_w, D, D, &lk->q);
        if (!st.code) st = pack(kernel, release, lw->k_w, D, D, &lk->k);
        if (!st.code) st = pack(kernel, release, lw->v_w, D, D, &lk->v);
    } else {
        /* One product for q, k and v: the activations are read (and, for bf16, converted)
         * once, and the work splits into three times as many tasks. */
        lk->qkv_bias = malloc((size_t)3 * D * sizeof(float));
        if (!lk->qkv_bias) return status_error(RADDINO_ERR_NOMEM, "out of memory for the biases");
        const float *biases[3] = {lw->q_b, lw->k_b, lw->v_b}, *parts[3] = {lw->q_w, lw->k_w, lw->v_w};
        for (int i = 0; i < 3; i++)   /* a NULL bias (qkv_bias false) is zero */
            for (int j = 0; j < D; j++) lk->qkv_bias[(size_t)i * D + j] = biases[i] ? biases[i][j] : 0.0f;
        st = gemm_matrix_pack_stacked(kernel, parts, 3, D, D, (size_t)D, &lk->qkv);
        for (int i = 0; !st.code && release && i < 3; i++)
            gemm_release_source(parts[i], (size_t)D * D * sizeof(float));
    }
    if (!st.code)
        st = pack(product_kernel(cfg, main_kernel, planned, index, VIT_PROJ), release, lw->proj_w,
                  D, D, &lk->proj);
    if (!st.code)
        st = pack(product_kernel(cfg, main_kernel, planned, index, VIT_FC1), release, lw->fc1_w, M,
                  D, &lk->fc1);
    if (!st.code)
        st = pack(product_kernel(cfg, main_kernel, planned, index, VIT_FC2), release, lw->fc2_w, D,
                  M, &lk->fc2);
    return st;
}

static raddino_status create_kernels(const vit_config *cfg, const vit_weights *w,
                                     gemm_kernel kernel, bool planned, bool release_mapped,
                                     vit_packed_weights *out)
{
    memset(out, 0, sizeof *out);
    out->kernel = kernel;
    out->layers = calloc((size_t)cfg->layers, sizeof *out->layers);
    if (!out->layers) return status_error(RADDINO_ERR_NOMEM, "out of memory for the weights");
    out->n_layers = cfg->layers;
    int patch_len = cfg->channels * cfg->patch * cfg->patch;
    raddino_status st = pack(product_kernel(cfg, kernel, planned, -1, VIT_QKV), release_mapped,
                             w->patch_w, cfg->hidden, patch_len, &out->patch);
    for (int i = 0; !st.code && i < cfg->layers; i++)
        st = pack_layer(cfg, &w->layers[i], kernel, planned, i, release_mapped, &out->layers[i]);
    if (st.code) vit_packed_weights_free(out);
    return st;
}

raddino_status vit_packed_weights_create(const vit_config *cfg, const vit_weights *w,
                                         gemm_kernel kernel, bool release_mapped,
                                         vit_packed_weights *out)
{
    return create_kernels(cfg, w, kernel, true, release_mapped, out);
}

raddino_status vit_packed_weights_create_uniform(const vit_config *cfg, const vit_weights *w,
                                                 gemm_kernel kernel, vit_packed_weights *out)
{
    return create_kernels(cfg, w, kernel, false, false, out);
}

void vit_packed_weights_free(vit_packed_weights *k)
{
    gemm_matrix_free(&k->patch);
    for (int i = 0; k->layers && i < k->n_layers; i++) {
        vit_layer_packed_weights *lk = &k->layers[i];
        gemm_matrix_free(&lk->q);
        gemm_matrix_free(&lk->k);
        gemm_matrix_free(&lk->v);
        gemm_matrix_free(&lk->qkv);
        free(lk->qkv_bias);
        gemm_matrix_free(&lk->proj);
        gemm_matrix_free(&lk->fc1);
        gemm_matrix_free(&lk->fc2);
    }
    free(k->layers);
    k->layers = NULL;
    k->n_layers = 0;
}
