/* model_config.h — private to encoder/: config.json and preprocessor_config.json (config.c, cJSON). */
#ifndef RADDINO_MODEL_CONFIG_H
#define RADDINO_MODEL_CONFIG_H

#include "raddino_encoder.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- config.c ---- */

typedef struct {
    int hidden, layers, heads, mlp, patch, channels, image_size;
    float layer_norm_eps;
    bool qkv_bias;
    double layerscale_value;
} vit_config;

typedef struct {
    bool do_convert_rgb, do_resize, do_center_crop, do_rescale, do_normalize;
    int resize_shortest_edge;        /* > 0 when size = {"shortest_edge": N} */
    int resize_height, resize_width; /* when size = {"height": H, "width": W} */
    int resample;
    int crop_height, crop_width;
    double rescale_factor;
    float mean[3], std[3];
} preprocess_config;

/* Reads MODEL_DIR/config.json. Missing keys take transformers' Dinov2Config defaults
 * (layer_norm_eps 1e-12!). Refuses use_swiglu_ffn, register tokens, hidden_act other than
 * gelu, num_channels other than 3, sizes that do not divide. */
raddino_status config_load_model(const char *path, vit_config *out);
raddino_status config_parse_model(const char *json, size_t len, const char *name, vit_config *out);
/* Reads preprocessor_config.json. Missing keys take BitImageProcessor defaults. */
raddino_status config_load_preprocess(const char *path, preprocess_config *out);
raddino_status config_parse_preprocess(const char *json, size_t len, const char *name,
                                       preprocess_config *out);

#ifdef __cplusplus
}
#endif
#endif
