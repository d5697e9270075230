/* vit.h — private to encoder/: the forward pass (vit.c). */
#ifndef RADDINO_VIT_H
#define RADDINO_VIT_H

#include "raddino_encoder.h"
#include "model_config.h"
#include "gemm.h"
#include "weights.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- vit.c ---- */

/* The weights as the chosen GEMM kernel wants them (packed once at load for our kernels). */
typedef struct {
    gemm_matrix q, k, v;    /* GEMM_BLAS: the three projections, in place */
    gemm_kernel values;     /* our kernels: attention's probabilities x values product */
    gemm_matrix qkv;        /* our kernels: q, k, v stacked into one [3D, D] product */
    float *qkv_bias;        /* our kernels: [3D] q, k, v biases side by side (owned) */
    gemm_matrix proj, fc1, fc2;
} vit_layer_packed_weights;

typedef struct {
    gemm_kernel kernel;
    gemm_matrix patch;
    vit_layer_packed_weights *layers;
    int n_layers;
} vit_packed_weights;

/* The products of a layer whose precision is chosen one by one (attention's scores are
 * always float32). */
typedef enum { VIT_QKV, VIT_VALUES, VIT_PROJ, VIT_FC1, VIT_FC2, VIT_PRODUCTS } vit_product;

/* The kernel a product of layer `layer` (-1: the patch embedding, product ignored) runs on
 * when the model runs on `kernel`: the same one, except in bf16 mode, where the products that
 * would lose the most stay float32 (see vit.c). */
gemm_kernel vit_product_kernel(const vit_config *cfg, gemm_kernel kernel, int layer,
                               vit_product product);

/* release_mapped: the weights are F32 tensors of a read-only file mapping whose pages may be
 * dropped once packed (see gemm_release_source). */
raddino_status vit_packed_weights_create(const vit_config *cfg, const vit_weights *w,
                                         gemm_kernel kernel, bool release_mapped,
                                         vit_packed_weights *out);
/* Every product on `kernel`, whatever vit_product_kernel says (the precision studies). */
raddino_status vit_packed_weights_create_uniform(const vit_config *cfg, const vit_weights *w,
                                                 gemm_kernel kernel, vit_packed_weights *out);
void vit_packed_weights_free(vit_packed_weights *k);

/* Scratch buffers for one forward pass at one input size. */
typedef struct vit_run_state vit_run_state;

/* For inputs of input_h x input_w pixels; the grid is input / patch (a remainder is dropped, as
 * the stride-patch convolution does). threads: the OpenMP threads the pass will run on. */
raddino_status vit_state_create(const vit_config *cfg, gemm_kernel kernel, int threads,
                                int input_h, int input_w, vit_run_state **out);
void vit_state_free(vit_run_state *s);

/* Position table for a grid_h x grid_w input: the stored table when the grid matches,
 * else transformers' bicubic interpolation (a = -0.75, align_corners false) of the patch rows.
 * out: [1 + grid_h * grid_w, D]. */
void vit_position_embeddings(const vit_config *cfg, const vit_weights *w, int grid_h, int grid_w,
                             float *out);

/* One image: pixels [C, input_h, input_w] -> tokens [1 + grid_h*grid_w, D]. */
raddino_status vit_forward(const vit_config *cfg, const vit_weights *w, const vit_packed_weights *kern,
                           vit_run_state *s, const float *pixels, float *tokens);

/* Optional hook to observe intermediate activations (tests compare them with the golden
 * stages). name is e.g. "embeddings.patch", "layer0.norm1", "layer0.qkv" (q|k|v side by side). */
typedef void (*vit_stage_hook)(void *user, const char *name, const float *data, int rows,
                               int cols);
void vit_state_set_hook(vit_run_state *s, vit_stage_hook hook, void *user);

#ifdef __cplusplus
}
#endif
#endif
