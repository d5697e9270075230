/* encoder.c — the public API of raddino_encoder.h on top of the private modules. */
#include "encoder_status.h"
#include "image_internal.h"
#include "preprocess.h"
#include "safetensors.h"
#include "vit.h"

#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct raddino_encoder {
    char weights_path[PATH_MAX];
    vit_config cfg;
    preprocess_config pre;
    safetensors_file file;
    vit_weights weights;
    vit_packed_weights packed; /* the weights packed for the chosen GEMM kernel */
    vit_run_state *state;       /* for state_h x state_w inputs; remade when the size changes */
    int state_h, state_w;
    int n_threads;
    raddino_load_options load;  /* pixel cap and DICOM window for raddino_embed_file */
    /* Scratch for embedding one image: grown on demand. */
    uint8_t *crop;
    float *pixels, *tokens;
    size_t crop_cap, pixels_cap, tokens_cap;
    char weights_sha256[65];    /* "" until raddino_encoder_identity hashed the weights */
};

raddino_encoder_params raddino_encoder_default_params(void)
{
    raddino_encoder_params p;
    memset(&p, 0, sizeof p);
    p.n_threads = 0;
    p.precision = RADDINO_PRECISION_FP32;
    p.gemm = RADDINO_GEMM_AUTO;
    p.max_pixels = RADDINO_DEFAULT_MAX_PIXELS;
    p.weights = NULL;
    return p;
}

static int threads_from_environment(void)
{
    const char *env = getenv("RADDINO_THREADS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == 0 && n > 0 && n <= 1024) return (int)n;
    }
    return omp_get_num_procs();
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static raddino_status join_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", dir);
    return status_ok();
}

static raddino_status find_weights(const char *dir, const raddino_encoder_params *params,
                                   char *out, size_t cap)
{
    if (params->weights) {
        if (strlen(params->weights) >= cap)
            return status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", params->weights);
        strcpy(out, params->weights);
        return status_ok();
    }
    static const char *const names[] = {"model.safetensors", "backbone_compatible.safetensors"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        raddino_status st = join_path(out, cap, dir, names[i]);
        if (st.code) return st;
        if (file_exists(out)) return status_ok();
    }
    return status_error(RADDINO_ERR_IO,
                        "%s: no model.safetensors or backbone_compatible.safetensors in the "
                        "model folder", dir);
}

static raddino_status load_configs(raddino_encoder *enc, const char *dir)
{
    char path[PATH_MAX];
    raddino_status st = join_path(path, sizeof path, dir, "config.json");
    if (!st.code) st = config_load_model(path, &enc->cfg);
    if (!st.code) st = join_path(path, sizeof path, dir, "preprocessor_config.json");
    if (!st.code) st = config_load_preprocess(path, &enc->pre);
    return st;
}

static raddino_status choose_kernel(const raddino_encoder_params *params, gemm_kernel *out)
{
    if (params->precision == RADDINO_PRECISION_BF16 && gemm_cpu_has_avx512_bf16()) {
        *out = GEMM_AVX512_BF16;
        return status_ok();
    }
    if (params->precision != RADDINO_PRECISION_FP32 && params->precision != RADDINO_PRECISION_BF16)
        return status_error(RADDINO_ERR_ARGUMENT, "unknown precision %d", params->precision);
    switch (params->gemm) {
    case RADDINO_GEMM_AUTO:
        *out = gemm_cpu_has_avx512() ? GEMM_AVX512_F32 : GEMM_BLAS;
        return status_ok();
    case RADDINO_GEMM_BLAS: *out = GEMM_BLAS; return status_ok();
    case RADDINO_GEMM_AVX512:
        if (!gemm_cpu_has_avx512())
            return status_error(RADDINO_ERR_UNSUPPORTED, "this CPU has no AVX-512");
        *out = GEMM_AVX512_F32;
        return status_ok();
    default: return status_error(RADDINO_ERR_ARGUMENT, "unknown gemm choice %d", params->gemm);
    }
}

/* Packs the weights for our kernels. */
static raddino_status pack_weights(raddino_encoder *enc, gemm_kernel kernel)
{
    /* Converted or copied tensors (F16/BF16, unaligned F32) are not mapped file pages. */
    bool release = enc->weights.n_owned == 0;
    return vit_packed_weights_create(&enc->cfg, &enc->weights, kernel, release, &enc->packed);
}

raddino_status raddino_encoder_open(const char *model_dir, const raddino_encoder_params *params,
                                    raddino_encoder **out)
{
    if (!out) return status_error(RADDINO_ERR_ARGUMENT, "raddino_encoder_open: out is NULL");
    *out = NULL;
    if (!model_dir || !*model_dir)
        return status_error(RADDINO_ERR_ARGUMENT, "no model folder given");
    raddino_encoder_params defaults = raddino_encoder_default_params();
    if (!params) params = &defaults;
    struct stat sb;
    if (stat(model_dir, &sb) != 0)
        return status_error(RADDINO_ERR_IO, "%s: %s", model_dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return status_error(RADDINO_ERR_IO, "%s: not a folder", model_dir);

    raddino_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) return status_error(RADDINO_ERR_NOMEM, "out of memory");
    enc->n_threads = params->n_threads > 0 ? params->n_threads : threads_from_environment();
    enc->load.max_pixels = params->max_pixels ? params->max_pixels : RADDINO_DEFAULT_MAX_PIXELS;
    enc->load.window = params->window;
    enc->load.window_center = params->window_center;
    enc->load.window_width = params->window_width;
    if (params->window < RADDINO_WINDOW_MINMAX || params->window > RADDINO_WINDOW_EXPLICIT ||
        (params->window == RADDINO_WINDOW_EXPLICIT && !(params->window_width >= 1))) {
        free(enc);
        return status_error(RADDINO_ERR_ARGUMENT,
                            "bad window: mode %d, width %g (a width must be at least 1)",
                            params->window, params->window_width);
    }

    gemm_kernel kernel = GEMM_BLAS;
    raddino_status st = choose_kernel(params, &kernel);
    if (!st.code) st = load_configs(enc, model_dir);
    if (!st.code) st = find_weights(model_dir, params, enc->weights_path, sizeof enc->weights_path);
    if (!st.code) st = safetensors_open(enc->weights_path, &enc->file);
    if (st.code) {
        free(enc);
        return st;
    }
    st = weights_load(&enc->file, &enc->cfg, &enc->weights);
    if (!st.code) {
        omp_set_num_threads(enc->n_threads);
        st = pack_weights(enc, kernel);
        if (st.code) weights_free(&enc->weights);
    }
    if (st.code) {
        safetensors_close(&enc->file);
        free(enc);
        return st;
    }
    *out = enc;
    return status_ok();
}

void raddino_encoder_close(raddino_encoder *enc)
{
    if (!enc) return;
    vit_state_free(enc->state);
    vit_packed_weights_free(&enc->packed);
    weights_free(&enc->weights);
    safetensors_close(&enc->file);
    free(enc->crop);
    free(enc->pixels);
    free(enc->tokens);
    free(enc);
}

int raddino_encoder_threads(const raddino_encoder *enc)
{
    return enc ? enc->n_threads : 0;
}

/* The network input size when it does not depend on the image (centre crop or a fixed resize);
 * 0 x 0 otherwise. */
static void fixed_input_size(const preprocess_config *pre, int *h, int *w)
{
    *h = *w = 0;
    if (pre->do_center_crop) {
        *h = pre->crop_height;
        *w = pre->crop_width;
    } else if (pre->do_resize && pre->resize_shortest_edge <= 0) {
        *h = pre->resize_height;
        *w = pre->resize_width;
    }
}

raddino_status raddino_encoder_info(const raddino_encoder *enc, raddino_model_info *out)
{
    if (!enc || !out) return status_error(RADDINO_ERR_ARGUMENT, "raddino_encoder_info: NULL");
    memset(out, 0, sizeof *out);
    const vit_config *c = &enc->cfg;
    const preprocess_config *p = &enc->pre;
    out->hidden = c->hidden;
    out->layers = c->layers;
    out->heads = c->heads;
    out->mlp = c->mlp;
    out->patch = c->patch;
    out->channels = c->channels;
    out->image_size = c->image_size;
    out->layer_norm_eps = c->layer_norm_eps;
    fixed_input_size(p, &out->input_height, &out->input_width);
    out->grid_height = out->input_height / c->patch;
    out->grid_width = out->input_width / c->patch;
    out->tokens = out->input_height ? 1 + out->grid_height * out->grid_width : 0;
    out->layout = enc->weights.layout;
    out->n_tensors = (uint64_t)enc->file.n_tensors;
    out->n_parameters = enc->weights.n_parameters;
    for (int i = 0; i < enc->file.n_tensors; i++)
        out->n_file_parameters += enc->file.tensors[i].n_elements;
    out->weights_path = enc->weights_path;
    gemm_kernel kernel = enc->packed.kernel;
    out->precision = kernel == GEMM_AVX512_BF16 ? RADDINO_PRECISION_BF16 : RADDINO_PRECISION_FP32;
    out->kernel = kernel == GEMM_AVX512_BF16   ? "avx512-bf16"
                  : kernel == GEMM_AVX512_F32 ? "avx512-fp32"
                                              : "openblas-fp32";
    out->do_convert_rgb = p->do_convert_rgb;
    out->do_resize = p->do_resize;
    out->do_center_crop = p->do_center_crop;
    out->do_rescale = p->do_rescale;
    out->do_normalize = p->do_normalize;
    out->resize_shortest_edge = p->resize_shortest_edge;
    out->resize_height = p->resize_height;
    out->resize_width = p->resize_width;
    out->resample = p->resample;
    out->crop_height = p->crop_height;
    out->crop_width = p->crop_width;
    out->rescale_factor = p->rescale_factor;
    for (int i = 0; i < 3; i++) {
        out->image_mean[i] = p->mean[i];
        out->image_std[i] = p->std[i];
    }
    return status_ok();
}

static raddino_status ensure_state(raddino_encoder *enc, int h, int w)
{
    if (enc->state && enc->state_h == h && enc->state_w == w) return status_ok();
    vit_state_free(enc->state);
    enc->state = NULL;
    raddino_status st =
        vit_state_create(&enc->cfg, enc->packed.kernel, enc->n_threads, h, w, &enc->state);
    if (st.code) return st;
    enc->state_h = h;
    enc->state_w = w;
    return status_ok();
}

static int tokens_for(const raddino_encoder *enc, int h, int w)
{
    return 1 + (h / enc->cfg.patch) * (w / enc->cfg.patch);
}

raddino_status raddino_encode_pixels(raddino_encoder *enc, int n, const float *pixels,
                                     float *tokens)
{
    if (!enc || !pixels || !tokens || n < 0)
        return status_error(RADDINO_ERR_ARGUMENT, "raddino_encode_pixels: bad argument");
    int h, w;
    fixed_input_size(&enc->pre, &h, &w);
    if (h <= 0 || w <= 0)
        return status_error(RADDINO_ERR_ARGUMENT,
                            "this model's input size depends on the image: use "
                            "raddino_embed_image");
    raddino_status st = ensure_state(enc, h, w);
    if (st.code) return st;
    omp_set_num_threads(enc->n_threads);
    size_t in_size = (size_t)enc->cfg.channels * h * w;
    size_t out_size = (size_t)tokens_for(enc, h, w) * enc->cfg.hidden;
    /* One image at a time: the GEMMs of a ViT are large already at batch 1, and this keeps a
     * batch bit-identical to single calls. */
    for (int i = 0; i < n; i++) {
        st = vit_forward(&enc->cfg, &enc->weights, &enc->packed, enc->state,
                         pixels + i * in_size, tokens + i * out_size);
        if (st.code) return st;
    }
    return status_ok();
}

static raddino_status grow(void **buf, size_t *cap, size_t need)
{
    if (*cap >= need) return status_ok();
    void *p = realloc(*buf, need);
    if (!p) return status_error(RADDINO_ERR_NOMEM, "out of memory (%zu bytes)", need);
    *buf = p;
    *cap = need;
    return status_ok();
}

raddino_status raddino_preprocess(const raddino_encoder *enc, const raddino_image *img,
                                  uint8_t *crop, float *pixels)
{
    if (!enc || !img || !img->rgb || img->width <= 0 || img->height <= 0)
        return status_error(RADDINO_ERR_ARGUMENT, "raddino_preprocess: bad argument");
    int w, h;
    preprocess_output_size(&enc->pre, img->width, img->height, &w, &h);
    uint8_t *buffer = crop ? crop : malloc((size_t)w * h * 3);
    if (!buffer) return status_error(RADDINO_ERR_NOMEM, "out of memory");
    raddino_status st = preprocess_crop(&enc->pre, img, buffer, w, h);
    if (!st.code && pixels) preprocess_normalize(&enc->pre, buffer, w, h, pixels);
    if (!crop) free(buffer);
    return st;
}

raddino_status raddino_embed_image(raddino_encoder *enc, const raddino_image *img, float *cls,
                                   float *tokens)
{
    if (!enc || !img || !img->rgb)
        return status_error(RADDINO_ERR_ARGUMENT, "raddino_embed_image: bad argument");
    int w, h;
    preprocess_output_size(&enc->pre, img->width, img->height, &w, &h);
    if (w < enc->cfg.patch || h < enc->cfg.patch)
        return status_error(RADDINO_ERR_UNSUPPORTED, "input %dx%d is smaller than one patch", w,
                            h);
    size_t n_tokens = (size_t)tokens_for(enc, h, w);
    raddino_status st = grow((void **)&enc->crop, &enc->crop_cap, (size_t)w * h * 3);
    if (!st.code) st = grow((void **)&enc->pixels, &enc->pixels_cap, (size_t)3 * w * h * 4);
    if (!st.code && !tokens)
        st = grow((void **)&enc->tokens, &enc->tokens_cap, n_tokens * enc->cfg.hidden * 4);
    if (!st.code) st = ensure_state(enc, h, w);
    if (st.code) return st;
    omp_set_num_threads(enc->n_threads);
    st = preprocess_crop(&enc->pre, img, enc->crop, w, h);
    if (st.code) return st;
    preprocess_normalize(&enc->pre, enc->crop, w, h, enc->pixels);
    float *out = tokens ? tokens : enc->tokens;
    st = vit_forward(&enc->cfg, &enc->weights, &enc->packed, enc->state, enc->pixels, out);
    if (!st.code && cls) memcpy(cls, out, (size_t)enc->cfg.hidden * sizeof(float));
    return st;
}

/* ---- workers ----------------------------------------------------------------------------- */

/* A forward pass's scratch of its own over the encoder's shared, read-only weights: what lets
 * several threads encode at once (vit_forward only reads the weights and the packed copy). */
struct raddino_encoder_worker {
    const raddino_encoder *enc;
    vit_run_state *state;
    int state_h, state_w;
    uint8_t *crop;
    float *pixels, *tokens;
    size_t crop_cap, pixels_cap, tokens_cap;
};

raddino_status raddino_encoder_worker_create(const raddino_encoder *enc,
                                             raddino_encoder_worker **out)
{
    if (!out) return status_error(RADDINO_ERR_ARGUMENT, "raddino_encoder_worker_create: NULL");
    *out = NULL;
    if (!enc) return status_error(RADDINO_ERR_ARGUMENT, "raddino_encoder_worker_create: NULL");
    raddino_encoder_worker *w = calloc(1, sizeof *w);
    if (!w) return status_error(RADDINO_ERR_NOMEM, "out of memory");
    w->enc = enc;
    *out = w;
    return status_ok();
}

void raddino_encoder_worker_free(raddino_encoder_worker *w)
{
    if (!w) return;
    vit_state_free(w->state);
    free(w->crop);
    free(w->pixels);
    free(w->tokens);
    free(w);
}

static raddino_status worker_state(raddino_encoder_worker *w, int h, int w_)
{
    if (w->state && w->state_h == h && w->state_w == w_) return status_ok();
    vit_state_free(w->state);
    w->state = NULL;
    /* One thread: a worker's OpenMP regions run on the calling thread alone (below). */
    raddino_status st = vit_state_create(&w->enc->cfg, w->enc->packed.kernel, 1, h, w_, &w->state);
    if (st.code) return st;
    w->state_h = h;
    w->state_w = w_;
    return status_ok();
}

/* Runs one forward pass on the calling thread only. Inside another OpenMP team's region the
 * nested regions are inactive anyway (one thread, and OpenBLAS sees omp_in_parallel()); on a
 * thread of the caller's own, setting this thread's thread count to 1 does the same. */
static raddino_status worker_forward(raddino_encoder_worker *w, const float *pixels, float *cls,
                                     float *tokens)
{
    const raddino_encoder *enc = w->enc;
    size_t n_tokens = (size_t)tokens_for(enc, w->state_h, w->state_w);
    raddino_status st = status_ok();
    if (!tokens) st = grow((void **)&w->tokens, &w->tokens_cap, n_tokens * enc->cfg.hidden * 4);
    if (st.code) return st;
    float *out = tokens ? tokens : w->tokens;
    int saved = omp_get_max_threads();
    bool outside = !omp_in_parallel();
    if (outside) omp_set_num_threads(1);
    st = vit_forward(&enc->cfg, &enc->weights, &enc->packed, w->state, pixels, out);
    if (outside) omp_set_num_threads(saved);
    if (!st.code && cls) memcpy(cls, out, (size_t)enc->cfg.hidden * sizeof(float));
    return st;
}

raddino_status raddino_encoder_worker_encode(raddino_encoder_worker *w, const float *pixels,
                                             float *cls, float *tokens)
{
    if (!w || !pixels)
        return status_error(RADDINO_ERR_ARGUMENT, "raddino_encoder_worker_encode: bad argument");
    int h, wd;
    fixed_input_size(&w->enc->pre, &h, &wd);
    if (h <= 0 || wd <= 0)
        return status_error(RADDINO_ERR_ARGUMENT,
                            "this model's input size depends on the image: use "
                            "raddino_encoder_worker_embed_image");
    raddino_status st = worker_state(w, h, wd);
    if (st.code) return st;
    return worker_forward(w, pixels, cls, tokens);
}

raddino_status raddino_encoder_worker_embed_image(raddino_encoder_worker *w,
                                                  const raddino_image *img, float *cls,
                                                  float *tokens)
{
    if (!w || !img || !img->rgb)
        return status_error(RADDINO_ERR_ARGUMENT,
                            "raddino_encoder_worker_embed_image: bad argument");
    const raddino_encoder *enc = w->enc;
    int wd, h;
    preprocess_output_size(&enc->pre, img->width, img->height, &wd, &h);
    if (wd < enc->cfg.patch || h < enc->cfg.patch)
        return status_error(RADDINO_ERR_UNSUPPORTED, "input %dx%d is smaller than one patch", wd,
                            h);
    raddino_status st = grow((void **)&w->crop, &w->crop_cap, (size_t)wd * h * 3);
    if (!st.code) st = grow((void **)&w->pixels, &w->pixels_cap, (size_t)3 * wd * h * 4);
    if (!st.code) st = worker_state(w, h, wd);
    if (!st.code) st = preprocess_crop(&enc->pre, img, w->crop, wd, h);
    if (st.code) return st;
    preprocess_normalize(&enc->pre, w->crop, wd, h, w->pixels);
    return worker_forward(w, w->pixels, cls, tokens);
}

raddino_status raddino_embed_file(raddino_encoder *enc, const char *path, float *cls,
                                  float *tokens)
{
    if (!enc || !path) return status_error(RADDINO_ERR_ARGUMENT, "raddino_embed_file: NULL");
    raddino_image img;
    raddino_status st = raddino_image_load_ex(path, &enc->load, &img);
    if (st.code) return st;
    st = raddino_embed_image(enc, &img, cls, tokens);
    raddino_image_free(&img);
    if (st.code && !strstr(st.message, path)) {
        raddino_status named = status_error(st.code, "%s: %s", path, st.message);
        return named;
    }
    return st;
}

void raddino_tokens_to_patch_map(const float *tokens, int hidden, int grid_height,
                                 int grid_width, float *map)
{
    size_t n = (size_t)grid_height * grid_width;
    for (size_t t = 0; t < n; t++) {
        const float *row = tokens + (1 + t) * (size_t)hidden;
        for (int d = 0; d < hidden; d++) map[(size_t)d * n + t] = row[d];
    }
}

raddino_status raddino_encoder_load_options(const raddino_encoder *enc, raddino_load_options *out)
{
    if (!enc || !out) return status_error(RADDINO_ERR_ARGUMENT, "raddino_encoder_load_options: NULL");
    *out = enc->load;
    return status_ok();
}

/* ---- identity ---------------------------------------------------------------------------- */

static raddino_status file_sha256(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f) return status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char digest[32];
    unsigned int digest_len = 0;
    unsigned char *buffer = malloc(1 << 16);
    bool ok = ctx && buffer && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    size_t n;
    while (ok && (n = fread(buffer, 1, 1 << 16, f)) > 0) ok = EVP_DigestUpdate(ctx, buffer, n);
    ok = ok && !ferror(f) && EVP_DigestFinal_ex(ctx, digest, &digest_len) && digest_len == 32;
    EVP_MD_CTX_free(ctx);
    free(buffer);
    fclose(f);
    if (!ok) return status_error(RADDINO_ERR_IO, "%s: cannot read to hash it", path);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return status_ok();
}

/* The text is what collections stored before the identity moved here (raddino_store_model_json
 * and the command's window suffix): the same bytes, so existing databases keep matching. */
static raddino_status identity_json(const raddino_model_info *i, const raddino_load_options *load,
                                    char *out, size_t cap)
{
    int n = snprintf(
        out, cap,
        "{\"hidden\": %d, \"layers\": %d, \"heads\": %d, \"mlp\": %d, \"patch\": %d, "
        "\"channels\": %d, \"image_size\": %d, \"layer_norm_eps\": %.9g, "
        "\"input\": [%d, %d], \"preprocessing\": {\"do_convert_rgb\": %d, \"do_resize\": %d, "
        "\"do_center_crop\": %d, \"do_rescale\": %d, \"do_normalize\": %d, "
        "\"resize_shortest_edge\": %d, \"resize\": [%d, %d], \"resample\": %d, "
        "\"crop\": [%d, %d], \"rescale_factor\": %.17g, \"image_mean\": [%.9g, %.9g, %.9g], "
        "\"image_std\": [%.9g, %.9g, %.9g]}",
        i->hidden, i->layers, i->heads, i->mlp, i->patch, i->channels, i->image_size,
        (double)i->layer_norm_eps, i->input_height, i->input_width, i->do_convert_rgb,
        i->do_resize, i->do_center_crop, i->do_rescale, i->do_normalize,
        i->resize_shortest_edge, i->resize_height, i->resize_width, i->resample,
        i->crop_height, i->crop_width, i->rescale_factor, (double)i->image_mean[0],
        (double)i->image_mean[1], (double)i->image_mean[2], (double)i->image_std[0],
        (double)i->image_std[1], (double)i->image_std[2]);
    size_t len = n < 0 ? cap : (size_t)n;
    if (len < cap) {
        if (load->window == RADDINO_WINDOW_AUTO)
            n = snprintf(out + len, cap - len, ", \"dicom_window\": \"auto\"}");
        else if (load->window == RADDINO_WINDOW_EXPLICIT)
            n = snprintf(out + len, cap - len,
                         ", \"dicom_window\": {\"center\": %.17g, \"width\": %.17g}}",
                         load->window_center, load->window_width);
        else
            n = snprintf(out + len, cap - len, "}");
        len = n < 0 ? cap : len + (size_t)n;
    }
    if (len >= cap) return status_error(RADDINO_ERR_ARGUMENT, "model description too long");
    return status_ok();
}

raddino_status raddino_encoder_identity(raddino_encoder *enc, raddino_model_identity *out)
{
    if (!enc || !out) return status_error(RADDINO_ERR_ARGUMENT, "raddino_encoder_identity: NULL");
    memset(out, 0, sizeof *out);
    raddino_model_info info;
    raddino_status st = raddino_encoder_info(enc, &info);
    if (!st.code && !enc->weights_sha256[0]) st = file_sha256(enc->weights_path, enc->weights_sha256);
    if (!st.code) st = identity_json(&info, &enc->load, out->config_json, sizeof out->config_json);
    if (st.code) return st;
    memcpy(out->weights_sha256, enc->weights_sha256, sizeof out->weights_sha256);
    out->dim = info.hidden;
    return st;
}
