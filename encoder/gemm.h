/* gemm.h — private to encoder/: the arithmetic of the forward pass: matrix products with
 * packed weights (gemm.c) and attention and the vector maths (attention.c). */
#ifndef RADDINO_GEMM_H
#define RADDINO_GEMM_H

#include "raddino_encoder.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- gemm.c ---- */

typedef enum {
    GEMM_BLAS = 0,          /* OpenBLAS sgemm on the weights in place */
    GEMM_AVX512_F32 = 1,    /* our AVX-512 kernel, weights packed once */
    GEMM_AVX512_BF16 = 2    /* our AVX-512 BF16 kernel: bf16 inputs, float32 sums */
} gemm_kernel;

/* A weight W [n, k] ready for y = x W^T: packed panels for our kernels, the plain matrix for
 * GEMM_BLAS. */
typedef struct {
    gemm_kernel kernel;
    int n, k;
    void *panels;           /* owned, 64-byte aligned (our kernels) */
    const float *plain;     /* GEMM_BLAS: not owned */
    size_t ld;              /* GEMM_BLAS: row stride of plain */
} gemm_matrix;

bool gemm_cpu_has_avx512(void);
bool gemm_cpu_has_avx512_bf16(void);
uint16_t gemm_float_to_bf16(float f);
raddino_status gemm_matrix_pack(gemm_kernel kernel, const float *w, int n, int k, size_t ldw,
                                gemm_matrix *out);
/* One weight W [n_parts * part_rows, k] made of n_parts matrices stacked row-wise (our
 * kernels only: GEMM_BLAS takes a single part, in place). */
raddino_status gemm_matrix_pack_stacked(gemm_kernel kernel, const float *const *parts,
                                        int n_parts, int part_rows, int k, size_t ldw,
                                        gemm_matrix *out);
void gemm_matrix_free(gemm_matrix *m);
/* Drops the resident pages of a packed weight's source in a read-only file mapping. */
void gemm_release_source(const float *w, size_t bytes);
/* y[m, n] = x[m, k] W^T + bias (bias may be NULL). bf16_scratch: m * (k + 1) uint16 for
 * GEMM_AVX512_BF16, else unused. Parallel (OpenMP) inside. */
void gemm_linear(const gemm_matrix *w, const float *x, int m, size_t ldx, const float *bias,
                 float *y, size_t ldy, uint16_t *bf16_scratch);
/* y = gelu(x W^T + bias), GELU fused into the product's last pass for our kernels. With
 * GEMM_AVX512_BF16 and y_bf16 set, the result goes to y_bf16 as bf16 (row stride n rounded up to
 * even, ready for gemm_linear_bf16_input) and y holds only partial sums; else it is in y. */
void gemm_linear_gelu(const gemm_matrix *w, const float *x, int m, size_t ldx, const float *bias,
                      float *y, size_t ldy, uint16_t *bf16_scratch, uint16_t *y_bf16);
/* y = x W^T + bias for GEMM_AVX512_BF16 weights with x already bf16 (row stride k rounded up
 * to even, as gemm_linear_gelu writes it). */
void gemm_linear_bf16_input(const gemm_matrix *w, const uint16_t *x, int m, const float *bias,
                            float *y, size_t ldy);
/* y = LayerNorm(x) row by row (biased variance), vectorised where AVX-512 is. */
void vector_layer_norm(const float *x, int rows, int D, const float *gamma, const float *beta,
                       float eps, float *y);
/* x = 0.5 x (1 + erf(x / sqrt 2)) in place (exact-erf GELU), vectorised where AVX-512 is. */
void vector_gelu(float *x, size_t n);
/* Our kernels' attention: ctx[T, D] = per head softmax(q k^T * scale) v; q, k, v rows have
 * stride ld_qkv; scratch: gemm_attention_scratch_bytes(...) bytes for `threads` threads.
 * The scores are float32 for both kernels; GEMM_AVX512_BF16 rounds the probabilities and the
 * values to bf16 for the second product. */
size_t gemm_attention_scratch_bytes(int tokens, int hidden, int heads, int threads);
void gemm_attention(gemm_kernel kernel, const float *q, const float *k, const float *v,
                    size_t ld_qkv, int T, int D, int heads, float scale, float *ctx, void *scratch,
                    int threads);

#ifdef __cplusplus
}
#endif
#endif
