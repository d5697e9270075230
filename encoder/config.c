/* config.c — config.json (Dinov2Config) and preprocessor_config.json (BitImageProcessor).
 *
 * Missing keys take the transformers defaults, so a config written by an older or newer
 * transformers still loads. What we cannot compute exactly (SwiGLU, register tokens, another
 * activation, a resampling filter other than bicubic) is refused with the key named, rather than
 * silently giving different numbers. */
#include "encoder_status.h"
#include "model_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Real configs are under 1 KB (a classifier's id2label for 22k classes is ~700 KB); anything
 * bigger is not a config. cJSON spends ~64 bytes per value: 1 MiB of JSON stays under 32 MiB. */
#define CONFIG_MAX_BYTES (1u << 20)

/* Sanity caps: far beyond ViT-g (hidden 1536, 40 layers, 24 heads), small enough that sizes
 * computed from them cannot overflow an int or ask for absurd allocations. */
#define MAX_HIDDEN 16384
#define MAX_LAYERS 1000
#define MAX_HEADS 1024
#define MAX_PATCH 1024
#define MAX_IMAGE 16384
#define MAX_MLP (1 << 20)

/* ---- reading JSON ---- */

static raddino_status read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return status_error(RADDINO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    raddino_status st = status_ok();
    char *buf = NULL;
    if (fstat(fd, &sb) != 0)
        st = status_error(RADDINO_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = status_error(RADDINO_ERR_IO, "%s: not a regular file", path);
    else if ((uint64_t)sb.st_size > CONFIG_MAX_BYTES)
        st = status_error(RADDINO_ERR_TOO_LARGE,
                          "%s: %lld bytes is too large for a config file (limit %u)", path,
                          (long long)sb.st_size, CONFIG_MAX_BYTES);
    else if (!(buf = malloc((size_t)sb.st_size + 1)))
        st = status_error(RADDINO_ERR_NOMEM, "%s: out of memory", path);
    size_t got = 0;
    while (!st.code && got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            st = status_error(RADDINO_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        else if (r == 0)
            break;  /* shrank while we read: parse what is there */
        else
            got += (size_t)r;
    }
    close(fd);
    if (st.code) {
        free(buf);
        return st;
    }
    buf[got] = 0;
    *out = buf;
    *len = got;
    return status_ok();
}

static bool only_whitespace(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') return false;
    return true;
}

/* Parses a whole document that must be a JSON object. */
static raddino_status parse_object(const char *json, size_t len, const char *name, cJSON **out)
{
    *out = NULL;
    if (!json) return status_error(RADDINO_ERR_ARGUMENT, "%s: no JSON text", name);
    if (len > CONFIG_MAX_BYTES)
        return status_error(RADDINO_ERR_TOO_LARGE,
                            "%s: %zu bytes is too large for a config file (limit %u)", name, len,
                            CONFIG_MAX_BYTES);
    /* A NUL-terminated private copy: cJSON before Debian's fix of CVE-2023-53154 read past the
     * end of a buffer that was not terminated, and the caller's need not be. */
    char *text = malloc(len + 1);
    if (!text) return status_error(RADDINO_ERR_NOMEM, "%s: out of memory", name);
    memcpy(text, json, len);
    text[len] = 0;
    /* cJSON reports the error position through return_parse_end; its global error pointer is
     * not ours to read (the library keeps no global state). */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    long long at = end ? (long long)(end - text) : -1LL;
    bool trailing = root && !only_whitespace(end, text + len);
    free(text);     /* cJSON keeps copies of every string */
    if (!root)
        return status_error(RADDINO_ERR_FORMAT, "%s: not valid JSON (at byte %lld)", name, at);
    if (trailing) {
        cJSON_Delete(root);
        return status_error(RADDINO_ERR_FORMAT, "%s: not valid JSON: extra text at byte %lld",
                            name, at);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return status_error(RADDINO_ERR_FORMAT, "%s: not a JSON object", name);
    }
    *out = root;
    return status_ok();
}

/* ---- typed getters: a missing key keeps the default; a wrong type is a FORMAT error ---- */

static bool exact_int(const cJSON *item, int *out)
{
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v >= INT32_MIN && v <= INT32_MAX) || v != floor(v)) return false;
    *out = (int)v;
    return true;
}

static raddino_status get_int(const cJSON *obj, const char *key, const char *name, int *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item && !exact_int(item, out))
        return status_error(RADDINO_ERR_FORMAT, "%s: %s must be an integer", name, key);
    return status_ok();
}

static raddino_status get_bool(const cJSON *obj, const char *key, const char *name, bool *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item) return status_ok();
    if (!cJSON_IsBool(item))
        return status_error(RADDINO_ERR_FORMAT, "%s: %s must be true or false", name, key);
    *out = cJSON_IsTrue(item);
    return status_ok();
}

static raddino_status get_number(const cJSON *obj, const char *key, const char *name, double *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item) return status_ok();
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return status_error(RADDINO_ERR_FORMAT, "%s: %s must be a number", name, key);
    *out = item->valuedouble;
    return status_ok();
}

/* *out stays NULL when the key is missing. */
static raddino_status get_string(const cJSON *obj, const char *key, const char *name,
                                 const char **out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item) return status_ok();
    if (!cJSON_IsString(item))
        return status_error(RADDINO_ERR_FORMAT, "%s: %s must be a string", name, key);
    *out = item->valuestring;
    return status_ok();
}

/* ---- config.json ---- */

#define DEFAULT_MLP_RATIO 4.0
#define DEFAULT_LAYER_NORM_EPS 1e-12  /* transformers' default; RAD-DINO's file says 1e-6 */

static vit_config model_defaults(void)
{
    /* transformers' Dinov2Config(); mlp and layer_norm_eps are set by check_model from
     * DEFAULT_MLP_RATIO and DEFAULT_LAYER_NORM_EPS when the file has no value. */
    vit_config c = {
        .hidden = 768, .layers = 12, .heads = 12, .patch = 14, .channels = 3,
        .image_size = 224, .qkv_bias = true, .layerscale_value = 1.0,
    };
    return c;
}

/* Keys that name an architecture we do not compute. */
static raddino_status check_architecture(const cJSON *root, const char *name)
{
    const char *model_type = NULL, *act = NULL;
    raddino_status st = get_string(root, "model_type", name, &model_type);
    if (st.code) return st;
    if (model_type && strcmp(model_type, "dinov2") != 0)
        return status_error(RADDINO_ERR_UNSUPPORTED,
                            "%s: model_type \"%.64s\" is not supported (only \"dinov2\"%s)", name,
                            model_type,
                            strstr(model_type, "register") ? "; register tokens are not supported"
                                                           : "");
    bool swiglu = false;
    if ((st = get_bool(root, "use_swiglu_ffn", name, &swiglu)).code) return st;
    if (swiglu)
        return status_error(RADDINO_ERR_UNSUPPORTED,
                            "%s: use_swiglu_ffn true: the SwiGLU feed-forward is not supported",
                            name);
    int registers = 0;
    if ((st = get_int(root, "num_register_tokens", name, &registers)).code) return st;
    if (registers != 0)
        return status_error(RADDINO_ERR_UNSUPPORTED,
                            "%s: num_register_tokens %d: register tokens are not supported", name,
                            registers);
    if ((st = get_string(root, "hidden_act", name, &act)).code) return st;
    if (act && strcmp(act, "gelu") != 0)
        return status_error(RADDINO_ERR_UNSUPPORTED,
                            "%s: hidden_act \"%.64s\" is not supported (only \"gelu\", exact erf)",
                            name, act);
    return status_ok();
}

static raddino_status read_model_numbers(const cJSON *root, const char *name, vit_config *c,
                                         double *mlp_ratio, double *eps)
{
    raddino_status st;
    if ((st = get_int(root, "hidden_size", name, &c->hidden)).code ||
        (st = get_int(root, "num_hidden_layers", name, &c->layers)).code ||
        (st = get_int(root, "num_attention_heads", name, &c->heads)).code ||
        (st = get_int(root, "patch_size", name, &c->patch)).code ||
        (st = get_int(root, "image_size", name, &c->image_size)).code ||
        (st = get_int(root, "num_channels", name, &c->channels)).code ||
        (st = get_number(root, "mlp_ratio", name, mlp_ratio)).code ||
        (st = get_number(root, "layer_norm_eps", name, eps)).code ||
        (st = get_number(root, "layerscale_value", name, &c->layerscale_value)).code ||
        (st = get_bool(root, "qkv_bias", name, &c->qkv_bias)).code)
        return st;
    return status_ok();
}

static raddino_status check_positive(const char *name, const char *key, int v, int cap)
{
    if (v <= 0)
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: %s %d must be positive", name, key, v);
    if (v > cap)
        return status_error(RADDINO_ERR_TOO_LARGE, "%s: %s %d is over the limit of %d", name, key,
                            v, cap);
    return status_ok();
}

static raddino_status check_model(const char *name, vit_config *c, double mlp_ratio, double eps)
{
    raddino_status st;
    if ((st = check_positive(name, "hidden_size", c->hidden, MAX_HIDDEN)).code ||
        (st = check_positive(name, "num_hidden_layers", c->layers, MAX_LAYERS)).code ||
        (st = check_positive(name, "num_attention_heads", c->heads, MAX_HEADS)).code ||
        (st = check_positive(name, "patch_size", c->patch, MAX_PATCH)).code ||
        (st = check_positive(name, "image_size", c->image_size, MAX_IMAGE)).code)
        return st;
    if (c->channels != 3)
        return status_error(RADDINO_ERR_UNSUPPORTED,
                            "%s: num_channels %d is not supported (only 3, RGB)", name,
                            c->channels);
    if (c->hidden % c->heads != 0)
        return status_error(RADDINO_ERR_UNSUPPORTED,
                            "%s: hidden_size %d is not a multiple of num_attention_heads %d", name,
                            c->hidden, c->heads);
    if (c->image_size < c->patch)
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: image_size %d is smaller than patch_size %d",
                            name, c->image_size, c->patch);
    /* Dinov2MLP: hidden_features = int(hidden_size * mlp_ratio), truncation in double. */
    double mlp = c->hidden * mlp_ratio;
    if (!(mlp >= 1))
        return status_error(RADDINO_ERR_UNSUPPORTED, "%s: mlp_ratio %g gives an empty MLP", name,
                            mlp_ratio);
    if (mlp > MAX_MLP)
        return status_error(RADDINO_ERR_TOO_LARGE, "%s: mlp_ratio %g gives an MLP over %d wide",
                            name, mlp_ratio, MAX_MLP);
    c->mlp = (int)mlp;
    if (!(eps >= 0) || eps > 1)
        return status_error(RADDINO_ERR_FORMAT, "%s: layer_norm_eps %g is out of range", name, eps);
    c->layer_norm_eps = (float)eps;  /* PyTorch's layer_norm takes eps as a double but the
                                        float32 kernel adds it in float */
    return status_ok();
}

raddino_status config_parse_model(const char *json, size_t len, const char *name, vit_config *out)
{
    if (!name) name = "config.json";
    if (!out) return status_error(RADDINO_ERR_ARGUMENT, "%s: NULL output", name);
    cJSON *root;
    raddino_status st = parse_object(json, len, name, &root);
    if (st.code) return st;
    vit_config c = model_defaults();
    double mlp_ratio = DEFAULT_MLP_RATIO, eps = DEFAULT_LAYER_NORM_EPS;
    st = check_architecture(root, name);
    if (!st.code) st = read_model_numbers(root, name, &c, &mlp_ratio, &eps);
    if (!st.code) st = check_model(name, &c, mlp_ratio, eps);
    cJSON_Delete(root);
    if (!st.code) *out = c;
    return st;
}

raddino_status config_load_model(const char *path, vit_config *out)
{
    char *text;
    size_t len;
    raddino_status st = read_file(path, &text, &len);
    if (st.code) return st;
    st = config_parse_model(text, len, path, out);
    free(text);
    return st;
}

/* ---- preprocessor_config.json ---- */

static preprocess_config preprocess_defaults(void)
{
    /* transformers' BitImageProcessor() with OPENAI_CLIP_MEAN / OPENAI_CLIP_STD */
    preprocess_config p = {
        .do_convert_rgb = true, .do_resize = true, .do_center_crop = true,
        .do_rescale = true, .do_normalize = true,
        .resize_shortest_edge = 224, .resample = 3, .crop_height = 224, .crop_width = 224,
        .rescale_factor = 1.0 / 255.0,
        .mean = {(float)0.48145466, (float)0.4578275, (float)0.40821073},
        .std = {(float)0.26862954, (float)0.26130258, (float)0.27577711},
    };
    return p;
}

static raddino_status size_value(const cJSON *v, const char *name, const char *key, int *out)
{
    if (!exact_int(v, out))
        return status_error(RADDINO_ERR_FORMAT, "%s: %s must be an integer", name, key);
    if (*out <= 0 || *out > MAX_IMAGE)
        return status_error(*out <= 0 ? RADDINO_ERR_FORMAT : RADDINO_ERR_TOO_LARGE,
                            "%s: %s %d is out of range (1..%d)", name, key, *out, MAX_IMAGE);
    return status_ok();
}

/* {"height": H, "width": W} or [H, W] (transformers' get_size_dict). */
static raddino_status height_width(const cJSON *item, const char *name, const char *key, int *h,
                                   int *w)
{
    char k[64];
    raddino_status st;
    const cJSON *hv, *wv;
    if (cJSON_IsArray(item)) {
        if (cJSON_GetArraySize(item) != 2)
            return status_error(RADDINO_ERR_FORMAT, "%s: %s must be [height, width]", name, key);
        hv = item->child;
        wv = item->child->next;
    } else {
        hv = cJSON_GetObjectItemCaseSensitive(item, "height");
        wv = cJSON_GetObjectItemCaseSensitive(item, "width");
        if (!hv || !wv)
            return status_error(RADDINO_ERR_FORMAT,
                                "%s: %s needs \"height\" and \"width\"", name, key);
    }
    snprintf(k, sizeof k, "%s.height", key);
    if ((st = size_value(hv, name, k, h)).code) return st;
    snprintf(k, sizeof k, "%s.width", key);
    return size_value(wv, name, k, w);
}

/* size: {"shortest_edge": N}, {"height": H, "width": W}, a plain N (shortest edge, as
 * get_size_dict(default_to_square=False)) or [H, W]. */
static raddino_status parse_size(const cJSON *root, const char *name, preprocess_config *p)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "size");
    if (!item) return status_ok();
    p->resize_shortest_edge = 0;
    p->resize_height = p->resize_width = 0;
    if (cJSON_IsNumber(item)) return size_value(item, name, "size", &p->resize_shortest_edge);
    if (cJSON_IsObject(item)) {
        /* BitImageProcessor.resize uses shortest_edge when present and ignores longest_edge. */
        const cJSON *se = cJSON_GetObjectItemCaseSensitive(item, "shortest_edge");
        if (se) return size_value(se, name, "size.shortest_edge", &p->resize_shortest_edge);
        return height_width(item, name, "size", &p->resize_height, &p->resize_width);
    }
    if (cJSON_IsArray(item))
        return height_width(item, name, "size", &p->resize_height, &p->resize_width);
    return status_error(RADDINO_ERR_FORMAT,
                        "%s: size must be {\"shortest_edge\": N}, {\"height\": H, \"width\": W} "
                        "or an integer",
                        name);
}

/* crop_size: {"height": H, "width": W}, [H, W] or a plain N (square). */
static raddino_status parse_crop(const cJSON *root, const char *name, preprocess_config *p)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "crop_size");
    if (!item) return status_ok();
    if (cJSON_IsNumber(item)) {
        raddino_status st = size_value(item, name, "crop_size", &p->crop_height);
        p->crop_width = p->crop_height;
        return st;
    }
    if (cJSON_IsObject(item) || cJSON_IsArray(item))
        return height_width(item, name, "crop_size", &p->crop_height, &p->crop_width);
    return status_error(RADDINO_ERR_FORMAT,
                        "%s: crop_size must be {\"height\": H, \"width\": W} or an integer", name);
}

/* image_mean / image_std: one number for every channel, or a list of 3. Stored as float32, as
 * numpy does when transformers normalises a float32 image. */
static raddino_status parse_triple(const cJSON *root, const char *name, const char *key,
                                   float out[3])
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item) return status_ok();
    double v[3];
    if (cJSON_IsNumber(item)) {
        v[0] = v[1] = v[2] = item->valuedouble;
    } else if (cJSON_IsArray(item) && cJSON_GetArraySize(item) == 3) {
        int i = 0;
        for (const cJSON *e = item->child; e; e = e->next, i++) {
            if (!cJSON_IsNumber(e))
                return status_error(RADDINO_ERR_FORMAT, "%s: %s[%d] must be a number", name, key,
                                    i);
            v[i] = e->valuedouble;
        }
    } else {
        return status_error(RADDINO_ERR_FORMAT,
                            "%s: %s must be a number or a list of 3 numbers (one per channel)",
                            name, key);
    }
    for (int i = 0; i < 3; i++) {
        if (!isfinite(v[i]) || !isfinite((float)v[i]))
            return status_error(RADDINO_ERR_FORMAT, "%s: %s[%d] is not a finite number", name,
                                key, i);
        out[i] = (float)v[i];
    }
    return status_ok();
}

static raddino_status read_preprocess(const cJSON *root, const char *name, preprocess_config *p)
{
    raddino_status st;
    if ((st = get_bool(root, "do_convert_rgb", name, &p->do_convert_rgb)).code ||
        (st = get_bool(root, "do_resize", name, &p->do_resize)).code ||
        (st = get_bool(root, "do_center_crop", name, &p->do_center_crop)).code ||
        (st = get_bool(root, "do_rescale", name, &p->do_rescale)).code ||
        (st = get_bool(root, "do_normalize", name, &p->do_normalize)).code ||
        (st = get_int(root, "resample", name, &p->resample)).code ||
        (st = get_number(root, "rescale_factor", name, &p->rescale_factor)).code ||
        (st = parse_size(root, name, p)).code || (st = parse_crop(root, name, p)).code ||
        (st = parse_triple(root, name, "image_mean", p->mean)).code ||
        (st = parse_triple(root, name, "image_std", p->std)).code)
        return st;
    if (p->resample != 3)
        return status_error(RADDINO_ERR_UNSUPPORTED,
                            "%s: resample %d is not supported (only 3, bicubic)", name,
                            p->resample);
    for (int i = 0; i < 3; i++)
        if (p->std[i] == 0)
            return status_error(RADDINO_ERR_FORMAT, "%s: image_std[%d] is 0", name, i);
    return status_ok();
}

raddino_status config_parse_preprocess(const char *json, size_t len, const char *name,
                                       preprocess_config *out)
{
    if (!name) name = "preprocessor_config.json";
    if (!out) return status_error(RADDINO_ERR_ARGUMENT, "%s: NULL output", name);
    cJSON *root;
    raddino_status st = parse_object(json, len, name, &root);
    if (st.code) return st;
    preprocess_config p = preprocess_defaults();
    st = read_preprocess(root, name, &p);
    cJSON_Delete(root);
    if (!st.code) *out = p;
    return st;
}

raddino_status config_load_preprocess(const char *path, preprocess_config *out)
{
    char *text;
    size_t len;
    raddino_status st = read_file(path, &text, &len);
    if (st.code) return st;
    st = config_parse_preprocess(text, len, path, out);
    free(text);
    return st;
}
