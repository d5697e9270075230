/* weights.h — private to encoder/: the tensors of both layouts mapped onto vit_weights (weights.c;
 * F16/BF16 converted). */
#ifndef RADDINO_WEIGHTS_H
#define RADDINO_WEIGHTS_H

#include "raddino_encoder.h"
#include "model_config.h"
#include "safetensors.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- weights.c ---- */

typedef struct {
    const float *norm1_w, *norm1_b;
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;  /* [D, D] / [D] each (row blocks of qkv) */
    const float *proj_w, *proj_b;
    const float *ls1;
    const float *norm2_w, *norm2_b;
    const float *fc1_w, *fc1_b;     /* [M, D] / [M] */
    const float *fc2_w, *fc2_b;     /* [D, M] / [D] */
    const float *ls2;
} vit_layer_weights;

typedef struct {
    const float *cls_token;         /* [D] */
    const float *pos_embed;         /* [1 + table_h * table_w, D] */
    int table_h, table_w;           /* grid of the position table */
    const float *patch_w;           /* [D, C * patch * patch] */
    const float *patch_b;           /* [D] */
    const float *norm_w, *norm_b;   /* final LayerNorm */
    vit_layer_weights *layers;      /* [layers] */
    raddino_weights_layout layout;
    uint64_t n_parameters;
    /* Buffers we own: converted F16/BF16 tensors and F32 tensors that were not 4-byte aligned. */
    void **owned;
    int n_owned, cap_owned;
} vit_weights;

/* Detects the layout (embeddings.cls_token -> Hugging Face, cls_token -> backbone), checks
 * every tensor's presence, dtype (F32/F16/BF16) and shape against cfg, and fills w. F32 data
 * is used in place. The safetensors file must stay open while w is used. */
raddino_status weights_load(const safetensors_file *f, const vit_config *cfg, vit_weights *w);
void weights_free(vit_weights *w);

#ifdef __cplusplus
}
#endif
#endif
