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
 * Matrix products go to OpenBLAS (the OpenMP build, so its threads and ours are one pool);
 * element-wise loops are parallelised with OpenMP over rows. Every buffer lives in the run
 * state, allocated once per grid size: a forward pass allocates nothing.
 */
#include "encoder_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    float *q, *k, *v;       /* [T, D] each */
    float *ctx;             /* [T, D] attention context, heads side by side */
    float *branch;          /* [T, D] output of the attention or MLP branch */
    float *mlp;             /* [T, M] */
    float *scores;          /* [T, T] one head's attention matrix */
    vit_stage_hook hook;
    void *hook_user;
};

static float *alloc_floats(size_t n)
{
    return malloc(n * sizeof(float));
}

raddino_status vit_state_create(const vit_config *cfg, int input_h, int input_w,
                                vit_run_state **out)
{
    *out = NULL;
    int grid_h = input_h / cfg->patch, grid_w = input_w / cfg->patch;
    if (grid_h <= 0 || grid_w <= 0 || (int64_t)grid_h * grid_w > VIT_MAX_PATCHES)
        return status_error(RADDINO_ERR_ARGUMENT, "input %dx%d gives a patch grid out of range",
                            input_w, input_h);
    vit_run_state *s = calloc(1, sizeof *s);
    if (!s) return status_error(RADDINO_ERR_NOMEM, "out of memory for the run state");
    s->cfg = *cfg;
    s->input_h = input_h;
    s->input_w = input_w;
    s->grid_h = grid_h;
    s->grid_w = grid_w;
    s->n_patches = grid_h * grid_w;
    s->n_tokens = 1 + s->n_patches;
    size_t T = (size_t)s->n_tokens, D = (size_t)cfg->hidden, M = (size_t)cfg->mlp;
    size_t patch_len = (size_t)cfg->channels * cfg->patch * cfg->patch;
    s->pos = alloc_floats(T * D);
    s->patches = alloc_floats((size_t)s->n_patches * patch_len);
    s->x = alloc_floats(T * D);
    s->h = alloc_floats(T * D);
    s->q = alloc_floats(T * D);
    s->k = alloc_floats(T * D);
    s->v = alloc_floats(T * D);
    s->ctx = alloc_floats(T * D);
    s->branch = alloc_floats(T * D);
    s->mlp = alloc_floats(T * M);
    s->scores = alloc_floats(T * T);
    if (!s->pos || !s->patches || !s->x || !s->h || !s->q || !s->k || !s->v || !s->ctx ||
        !s->branch || !s->mlp || !s->scores) {
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
    free(s->pos);
    free(s->patches);
    free(s->x);
    free(s->h);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->ctx);
    free(s->branch);
    free(s->mlp);
    free(s->scores);
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

/* y[rows, out] = x[rows, in] W[out, in]^T + b (b may be NULL). */
static void linear(const float *x, int rows, int in, const float *W, const float *b, int out,
                   float *y)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in, W, in, 0.0f,
                y, out);
    if (!b) return;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * out;
        for (int j = 0; j < out; j++) yr[j] += b[j];
    }
}

/* Biased variance, as torch.nn.LayerNorm; statistics in double so that the result does not
 * depend on the summation order. */
static void layer_norm(const float *x, int rows, int D, const float *gamma, const float *beta,
                       float eps, float *y)
{
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * D;
        float *yr = y + (size_t)r * D;
        double sum = 0, sum2 = 0;
        for (int j = 0; j < D; j++) sum += xr[j];
        double mean = sum / D;
        for (int j = 0; j < D; j++) sum2 += (xr[j] - mean) * (xr[j] - mean);
        float rstd = (float)(1.0 / sqrt(sum2 / D + (double)eps));
        float m = (float)mean;
        for (int j = 0; j < D; j++) yr[j] = (xr[j] - m) * rstd * gamma[j] + beta[j];
    }
}

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

/* Exact GELU: 0.5 x (1 + erf(x / sqrt 2)), as torch.nn.GELU() (not the tanh approximation). */
static void gelu(float *x, size_t n)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
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

static void embed(const vit_config *cfg, const vit_weights *w, vit_run_state *s,
                  const float *pixels)
{
    int D = cfg->hidden;
    int patch_len = cfg->channels * cfg->patch * cfg->patch;
    if (s->pos_weights != w) {
        vit_position_embeddings(cfg, w, s->grid_h, s->grid_w, s->pos);
        s->pos_weights = w;
    }
    im2col(s, pixels);
    linear(s->patches, s->n_patches, patch_len, w->patch_w, w->patch_b, D, s->x + D);
    emit(s, "embeddings.patch", s->x + D, s->n_patches, D);
    memcpy(s->x, w->cls_token, (size_t)D * sizeof(float));
    size_t n = (size_t)s->n_tokens * D;
    for (size_t i = 0; i < n; i++) s->x[i] += s->pos[i];
    emit(s, "embeddings.out", s->x, s->n_tokens, D);
}

static void emit_qkv(vit_run_state *s, const char *prefix)
{
    if (!s->hook) return;
    int T = s->n_tokens, D = s->cfg.hidden;
    float *side = malloc((size_t)T * 3 * D * sizeof(float));
    if (!side) return;
    for (int r = 0; r < T; r++) {
        memcpy(side + (size_t)r * 3 * D, s->q + (size_t)r * D, (size_t)D * sizeof(float));
        memcpy(side + (size_t)r * 3 * D + D, s->k + (size_t)r * D, (size_t)D * sizeof(float));
        memcpy(side + (size_t)r * 3 * D + 2 * D, s->v + (size_t)r * D, (size_t)D * sizeof(float));
    }
    char name[64];
    snprintf(name, sizeof name, "%s.qkv", prefix);
    emit(s, name, side, T, 3 * D);
    free(side);
}

static void attention(const vit_config *cfg, const vit_layer_weights *lw, vit_run_state *s,
                      const char *prefix)
{
    int T = s->n_tokens, D = cfg->hidden, hd = D / cfg->heads;
    linear(s->h, T, D, lw->q_w, lw->q_b, D, s->q);
    linear(s->h, T, D, lw->k_w, lw->k_b, D, s->k);
    linear(s->h, T, D, lw->v_w, lw->v_b, D, s->v);
    emit_qkv(s, prefix);
    float scale = 1.0f / sqrtf((float)hd);
    for (int head = 0; head < cfg->heads; head++) {
        size_t off = (size_t)head * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, s->q + off, D,
                    s->k + off, D, 0.0f, s->scores, T);
        softmax_rows(s->scores, T, T);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, s->scores, T,
                    s->v + off, D, 0.0f, s->ctx + off, D);
    }
    char name[64];
    snprintf(name, sizeof name, "%s.attn_context", prefix);
    emit(s, name, s->ctx, T, D);
    linear(s->ctx, T, D, lw->proj_w, lw->proj_b, D, s->branch);
    snprintf(name, sizeof name, "%s.attn_output", prefix);
    emit(s, name, s->branch, T, D);
}

static void mlp(const vit_config *cfg, const vit_layer_weights *lw, vit_run_state *s,
                const char *prefix)
{
    int T = s->n_tokens, D = cfg->hidden, M = cfg->mlp;
    char name[64];
    linear(s->h, T, D, lw->fc1_w, lw->fc1_b, M, s->mlp);
    snprintf(name, sizeof name, "%s.fc1", prefix);
    emit(s, name, s->mlp, T, M);
    gelu(s->mlp, (size_t)T * M);
    snprintf(name, sizeof name, "%s.gelu", prefix);
    emit(s, name, s->mlp, T, M);
    linear(s->mlp, T, M, lw->fc2_w, lw->fc2_b, D, s->branch);
    snprintf(name, sizeof name, "%s.fc2", prefix);
    emit(s, name, s->branch, T, D);
}

static void layer(const vit_config *cfg, const vit_layer_weights *lw, vit_run_state *s, int index)
{
    int T = s->n_tokens, D = cfg->hidden;
    char prefix[32], name[64];
    snprintf(prefix, sizeof prefix, "layer%d", index);

    layer_norm(s->x, T, D, lw->norm1_w, lw->norm1_b, cfg->layer_norm_eps, s->h);
    snprintf(name, sizeof name, "%s.norm1", prefix);
    emit(s, name, s->h, T, D);
    attention(cfg, lw, s, prefix);
    residual_add(s->x, s->branch, lw->ls1, T, D);
    snprintf(name, sizeof name, "%s.resid1", prefix);
    emit(s, name, s->x, T, D);

    layer_norm(s->x, T, D, lw->norm2_w, lw->norm2_b, cfg->layer_norm_eps, s->h);
    snprintf(name, sizeof name, "%s.norm2", prefix);
    emit(s, name, s->h, T, D);
    mlp(cfg, lw, s, prefix);
    residual_add(s->x, s->branch, lw->ls2, T, D);
    snprintf(name, sizeof name, "%s.out", prefix);
    emit(s, name, s->x, T, D);
}

raddino_status vit_forward(const vit_config *cfg, const vit_weights *w, vit_run_state *s,
                           const float *pixels, float *tokens)
{
    if (cfg->hidden != s->cfg.hidden || cfg->mlp != s->cfg.mlp || cfg->patch != s->cfg.patch ||
        cfg->channels != s->cfg.channels)
        return status_error(RADDINO_ERR_ARGUMENT, "run state was made for another model");
    embed(cfg, w, s, pixels);
    for (int i = 0; i < cfg->layers; i++) layer(cfg, &w->layers[i], s, i);
    layer_norm(s->x, s->n_tokens, cfg->hidden, w->norm_w, w->norm_b, cfg->layer_norm_eps, tokens);
    emit(s, "last_hidden_state", tokens, s->n_tokens, cfg->hidden);
    return status_ok();
}
