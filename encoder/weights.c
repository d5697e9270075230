/* weights.c — maps the tensors of a safetensors file onto vit_weights.
 *
 * Two layouts hold the same numbers: Hugging Face names (model.safetensors) and the original
 * DINOv2 names (backbone_compatible.safetensors, with q, k and v fused into one qkv matrix).
 * Every tensor is checked for presence, shape and dtype before the forward pass sees it, so a
 * mismatched file fails here with the tensor named rather than computing garbage. */
#include "encoder_status.h"
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "weights.c reads little-endian safetensors data in place: port the F32/F16 loads first"
#endif

/* ---- half-precision conversion ---- */

/* IEEE binary16 -> binary32, exact for every input (subnormals, infinities, NaN payloads). */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | mant << 13;  /* inf, or NaN keeping its payload */
    } else if (exp != 0) {
        bits = sign | (exp + 127 - 15) << 23 | mant << 13;
    } else if (mant == 0) {
        bits = sign;  /* +-0 */
    } else {
        /* Subnormal: mant * 2^-24. Shift the leading 1 up to the implicit bit position; each
         * shift lowers the exponent by one. Every such value is a normal float32. */
        int e = 127 - 15 + 1;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        bits = sign | (uint32_t)e << 23 | (mant & 0x3ffu) << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* bfloat16 is the top half of a float32. */
static float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- loading context ---- */

typedef struct {
    const safetensors_file *f;
    const vit_config *cfg;
    vit_weights *w;
} loader;

static raddino_status own(loader *L, void *buf)
{
    vit_weights *w = L->w;
    if (w->n_owned == w->cap_owned) {
        int cap = w->cap_owned ? 2 * w->cap_owned : 32;
        void **grown = realloc(w->owned, (size_t)cap * sizeof *grown);
        if (!grown) {
            free(buf);
            return status_error(RADDINO_ERR_NOMEM, "%s: out of memory", L->f->path);
        }
        w->owned = grown;
        w->cap_owned = cap;
    }
    w->owned[w->n_owned++] = buf;
    return status_ok();
}

static void format_shape(char *buf, size_t size, const int64_t *shape, int n)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? "," : "",
                                 (long long)shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

static raddino_status check_shape(loader *L, const safetensors_tensor *t, const int64_t *want,
                                  int n)
{
    bool same = t->n_dims == n;
    for (int i = 0; same && i < n; i++) same = t->shape[i] == want[i];
    if (same) return status_ok();
    char have_s[160], want_s[160];
    format_shape(have_s, sizeof have_s, t->shape, t->n_dims);
    format_shape(want_s, sizeof want_s, want, n);
    return status_error(RADDINO_ERR_MODEL, "%s: tensor %s has shape %s, expected %s", L->f->path,
                        t->name, have_s, want_s);
}

/* Float data of t: in place when F32 and aligned, else an owned float copy. */
static raddino_status as_float(loader *L, const safetensors_tensor *t, const float **out)
{
    if (t->dtype == ST_F32 && (uintptr_t)t->data % _Alignof(float) == 0) {
        *out = (const float *)(const void *)t->data;
        return status_ok();
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return status_error(RADDINO_ERR_MODEL,
                            "%s: tensor %s: dtype %s not supported (want F32, F16 or BF16)",
                            L->f->path, t->name, safetensors_dtype_name(t->dtype));
    float *buf = malloc(t->n_elements ? t->n_elements * sizeof *buf : 1);
    if (!buf) return status_error(RADDINO_ERR_NOMEM, "%s: tensor %s: out of memory", L->f->path,
                                  t->name);
    if (t->dtype == ST_F32) {
        memcpy(buf, t->data, t->n_elements * sizeof *buf);  /* unaligned: copy */
    } else {
        for (uint64_t i = 0; i < t->n_elements; i++) {
            uint16_t h = (uint16_t)(t->data[2 * i] | t->data[2 * i + 1] << 8);
            buf[i] = t->dtype == ST_F16 ? f16_to_f32(h) : bf16_to_f32(h);
        }
    }
    raddino_status st = own(L, buf);
    if (st.code) return st;
    *out = buf;
    return status_ok();
}

/* Looks up `name`, checks its shape against want[0..n) and yields its data as floats. */
static raddino_status take(loader *L, const char *name, const int64_t *want, int n,
                           const float **out)
{
    const safetensors_tensor *t = safetensors_find(L->f, name);
    if (!t) return status_error(RADDINO_ERR_MODEL, "%s: missing tensor %s", L->f->path, name);
    raddino_status st = check_shape(L, t, want, n);
    if (st.code) return st;
    if ((st = as_float(L, t, out)).code) return st;
    L->w->n_parameters += t->n_elements;
    return status_ok();
}

/* take() for a 1-D or 2-D tensor; a printf-style name keeps the call sites short. */
static raddino_status take_v(loader *L, const float **out, int64_t d0, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static raddino_status take_v(loader *L, const float **out, int64_t d0, const char *fmt, ...)
{
    char name[SAFETENSORS_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t want[1] = {d0};
    return take(L, name, want, 1, out);
}

static raddino_status take_m(loader *L, const float **out, int64_t d0, int64_t d1,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static raddino_status take_m(loader *L, const float **out, int64_t d0, int64_t d1,
                             const char *fmt, ...)
{
    char name[SAFETENSORS_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t want[2] = {d0, d1};
    return take(L, name, want, 2, out);
}

/* ---- the two layouts ---- */

typedef struct {
    const char *cls, *pos, *patch_w, *patch_b, *norm_w, *norm_b;
} embed_names;

static const embed_names hf_embed = {
    "embeddings.cls_token", "embeddings.position_embeddings",
    "embeddings.patch_embeddings.projection.weight", "embeddings.patch_embeddings.projection.bias",
    "layernorm.weight", "layernorm.bias",
};
static const embed_names backbone_embed = {
    "cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
    "norm.weight", "norm.bias",
};

static raddino_status load_embeddings(loader *L, const embed_names *n)
{
    const vit_config *c = L->cfg;
    vit_weights *w = L->w;
    int64_t D = c->hidden, grid = c->image_size / c->patch;
    int64_t cls_shape[3] = {1, 1, D};
    int64_t pos_shape[3] = {1, 1 + grid * grid, D};
    int64_t patch_shape[4] = {D, c->channels, c->patch, c->patch};
    raddino_status st;
    if ((st = take(L, n->cls, cls_shape, 3, &w->cls_token)).code ||
        (st = take(L, n->pos, pos_shape, 3, &w->pos_embed)).code ||
        (st = take(L, n->patch_w, patch_shape, 4, &w->patch_w)).code ||
        (st = take_v(L, &w->patch_b, D, "%s", n->patch_b)).code ||
        (st = take_v(L, &w->norm_w, D, "%s", n->norm_w)).code ||
        (st = take_v(L, &w->norm_b, D, "%s", n->norm_b)).code)
        return st;
    w->table_h = w->table_w = (int)grid;
    return status_ok();
}

/* Parts named alike in both layouts apart from the prefix and a few words. */
static raddino_status load_common(loader *L, const char *pre, const char *ls1, const char *ls2,
                                  const char *proj, vit_layer_weights *lw)
{
    int64_t D = L->cfg->hidden, M = L->cfg->mlp;
    raddino_status st;
    if ((st = take_v(L, &lw->norm1_w, D, "%s.norm1.weight", pre)).code ||
        (st = take_v(L, &lw->norm1_b, D, "%s.norm1.bias", pre)).code ||
        (st = take_m(L, &lw->proj_w, D, D, "%s.%s.weight", pre, proj)).code ||
        (st = take_v(L, &lw->proj_b, D, "%s.%s.bias", pre, proj)).code ||
        (st = take_v(L, &lw->ls1, D, "%s.%s", pre, ls1)).code ||
        (st = take_v(L, &lw->norm2_w, D, "%s.norm2.weight", pre)).code ||
        (st = take_v(L, &lw->norm2_b, D, "%s.norm2.bias", pre)).code ||
        (st = take_m(L, &lw->fc1_w, M, D, "%s.mlp.fc1.weight", pre)).code ||
        (st = take_v(L, &lw->fc1_b, M, "%s.mlp.fc1.bias", pre)).code ||
        (st = take_m(L, &lw->fc2_w, D, M, "%s.mlp.fc2.weight", pre)).code ||
        (st = take_v(L, &lw->fc2_b, D, "%s.mlp.fc2.bias", pre)).code ||
        (st = take_v(L, &lw->ls2, D, "%s.%s", pre, ls2)).code)
        return st;
    return status_ok();
}

/* With qkv_bias false the model has no q/k/v bias parameters: transformers ignores any in the
 * file, so we do too and leave the pointers NULL (vit.c treats a NULL bias as zero). */
static raddino_status load_layer_hf(loader *L, int i, vit_layer_weights *lw)
{
    int64_t D = L->cfg->hidden;
    char pre[64];
    snprintf(pre, sizeof pre, "encoder.layer.%d", i);
    raddino_status st = load_common(L, pre, "layer_scale1.lambda1", "layer_scale2.lambda1",
                                    "attention.output.dense", lw);
    if (st.code) return st;
    const char *part[3] = {"query", "key", "value"};
    const float **wt[3] = {&lw->q_w, &lw->k_w, &lw->v_w};
    const float **bs[3] = {&lw->q_b, &lw->k_b, &lw->v_b};
    for (int j = 0; j < 3; j++) {
        if ((st = take_m(L, wt[j], D, D, "%s.attention.attention.%s.weight", pre, part[j])).code)
            return st;
        if (L->cfg->qkv_bias &&
            (st = take_v(L, bs[j], D, "%s.attention.attention.%s.bias", pre, part[j])).code)
            return st;
    }
    return status_ok();
}

/* The fused qkv holds query rows 0..D-1, key rows D..2D-1, value rows 2D..3D-1. */
static raddino_status load_layer_backbone(loader *L, int i, vit_layer_weights *lw)
{
    int64_t D = L->cfg->hidden;
    char pre[64];
    snprintf(pre, sizeof pre, "blocks.%d", i);
    raddino_status st = load_common(L, pre, "ls1.gamma", "ls2.gamma", "attn.proj", lw);
    if (st.code) return st;
    const float *qkv_w, *qkv_b = NULL;
    if ((st = take_m(L, &qkv_w, 3 * D, D, "%s.attn.qkv.weight", pre)).code) return st;
    if (L->cfg->qkv_bias && (st = take_v(L, &qkv_b, 3 * D, "%s.attn.qkv.bias", pre)).code)
        return st;
    lw->q_w = qkv_w;
    lw->k_w = qkv_w + D * D;
    lw->v_w = qkv_w + 2 * D * D;
    if (qkv_b) {
        lw->q_b = qkv_b;
        lw->k_b = qkv_b + D;
        lw->v_b = qkv_b + 2 * D;
    }
    return status_ok();
}

static raddino_status load_all(loader *L)
{
    vit_weights *w = L->w;
    if (safetensors_find(L->f, "embeddings.cls_token"))
        w->layout = RADDINO_LAYOUT_HF;
    else if (safetensors_find(L->f, "cls_token"))
        w->layout = RADDINO_LAYOUT_BACKBONE;
    else
        return status_error(RADDINO_ERR_MODEL, "%s: no cls_token: not a DINOv2 weights file",
                            L->f->path);
    bool hf = w->layout == RADDINO_LAYOUT_HF;
    raddino_status st = load_embeddings(L, hf ? &hf_embed : &backbone_embed);
    if (st.code) return st;
    w->layers = calloc((size_t)L->cfg->layers, sizeof *w->layers);
    if (!w->layers) return status_error(RADDINO_ERR_NOMEM, "%s: out of memory", L->f->path);
    for (int i = 0; i < L->cfg->layers; i++) {
        st = hf ? load_layer_hf(L, i, &w->layers[i]) : load_layer_backbone(L, i, &w->layers[i]);
        if (st.code) return st;
    }
    return status_ok();
}

raddino_status weights_load(const safetensors_file *f, const vit_config *cfg, vit_weights *w)
{
    if (!f || !cfg || !w) return status_error(RADDINO_ERR_ARGUMENT, "weights_load: NULL argument");
    memset(w, 0, sizeof *w);
    if (cfg->layers <= 0 || cfg->hidden <= 0 || cfg->patch <= 0 || cfg->mlp <= 0)
        return status_error(RADDINO_ERR_ARGUMENT, "%s: invalid model config", f->path);
    loader L = {f, cfg, w};
    raddino_status st = load_all(&L);
    if (st.code) weights_free(w);
    return st;
}

void weights_free(vit_weights *w)
{
    if (!w) return;
    for (int i = 0; i < w->n_owned; i++) free(w->owned[i]);
    free(w->owned);
    free(w->layers);
    memset(w, 0, sizeof *w);
}
