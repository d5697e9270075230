/* gemm_internal.h — private to gemm.c (the matrix products) and attention.c (attention and the
 * vector maths): the panel layout, the vector maths both use, and the one product attention
 * runs on (gemm_block_times_panel). Small helpers are static inline so that both files keep
 * them inlined as when they were one. */
#ifndef RADDINO_GEMM_INTERNAL_H
#define RADDINO_GEMM_INTERNAL_H

#include "gemm.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define GEMM_HAVE_X86 1
#include <immintrin.h>
#else
#define GEMM_HAVE_X86 0
#endif

#define PANEL 64            /* columns of y per panel (4 zmm of 16 floats) */
#define TILE_ROWS 6         /* rows of y per micro-kernel call */
#define BLOCK_ROWS 48       /* rows of x per task: 8 tiles share a panel chunk in cache */
#define K_CHUNK 384         /* k per pass over a panel chunk (even, for bf16 pairs) */

static inline size_t panel_count(int n)
{
    return ((size_t)n + PANEL - 1) / PANEL;
}

static inline int even(int k)
{
    return (k + 1) & ~1;
}

static inline size_t packed_bytes(gemm_kernel kernel, int n, int k)
{
    size_t panels = panel_count(n);
    if (kernel == GEMM_AVX512_BF16) return panels * (size_t)even(k) * PANEL * sizeof(uint16_t);
    return panels * (size_t)k * PANEL * sizeof(float);
}

#if GEMM_HAVE_X86
/* Masks for the four 16-column groups of a panel when only `cols` (1..64) are wanted. */
static inline void column_masks(int cols, __mmask16 mask[4])
{
    for (int g = 0; g < 4; g++) {
        int left = cols - 16 * g;
        mask[g] = left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
    }
}
#endif

/* ---- vector math ----------------------------------------------------------------------- */

#if GEMM_HAVE_X86
/* e^x for x <= 0, 16 lanes: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor polynomial to
 * degree 6 (relative error below 2e-7, about one float32 ulp), times 2^n with vscalefps (which
 * also flushes e^-88 and below to 0 correctly). */
__attribute__((target("avx512f"))) static inline __m512 exp_nonpositive(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Exact-form GELU, 0.5 x (1 + erf(x / sqrt 2)), 16 lanes at a time. erf comes from
 * erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2), with the Chebyshev-fitted P of Numerical
 * Recipes (fractional error below 1.2e-7 for every z >= 0), so GELU stays within about one
 * float32 ulp of the scalar erff form. */
__attribute__((target("avx512f"))) static inline __m512 erf_avx512(__m512 x)
{
    __m512 z = _mm512_abs_ps(x);
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f),
                             _mm512_fmadd_ps(z, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f)));
    static const float c[10] = {-1.26551223f, 1.00002368f, 0.37409196f,  0.09678418f,
                                -0.18628806f, 0.27886807f, -1.13520398f, 1.48851587f,
                                -0.82215223f, 0.17087277f};
    __m512 p = _mm512_set1_ps(c[9]);
    for (int i = 8; i >= 0; i--) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c[i]));
    __m512 e = _mm512_fnmadd_ps(z, z, p);                       /* -z^2 + P(t) <= 0 */
    __m512 erfc = _mm512_mul_ps(t, exp_nonpositive(_mm512_min_ps(e, _mm512_setzero_ps())));
    __m512 erf_abs = _mm512_sub_ps(_mm512_set1_ps(1.0f), erfc);
    /* Copy the sign of x. */
    return _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(erf_abs),
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
}

__attribute__((target("avx512f"))) static inline __m512 gelu_vector(__m512 v)
{
    __m512 e = erf_avx512(_mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v),
                         _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

__attribute__((target("avx512f"))) static inline void gelu_avx512(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm512_storeu_ps(x + i, gelu_vector(_mm512_loadu_ps(x + i)));
    }
    for (; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

#endif

/* GELU of n values on the calling thread. */
static inline void vector_gelu_row(float *x, size_t n)
{
#if GEMM_HAVE_X86
    if (gemm_cpu_has_avx512()) {
        gelu_avx512(x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

/* Where a product's result goes: y (float32, also the partial sums between k passes), then
 * optionally GELU and, for the bf16 kernel, bf16 output (see tile_finish). */
typedef struct {
    float *y;
    size_t ldy;
    bool gelu;
    uint16_t *bf16;
    size_t bf16_ld;
} product_output;

/* The plain output: y only. */
static inline product_output to_floats(float *y, size_t ldy)
{
    return (product_output){.y = y, .ldy = ldy};
}

/* One task: rows [r0, r0+rows) of x times panel p, all of k, in K_CHUNK passes (gemm.c). x is
 * float for GEMM_AVX512_F32 and bf16 (row stride ldx elements) for GEMM_AVX512_BF16. */
void gemm_block_times_panel(const gemm_matrix *w, const void *x, size_t ldx, int r0, int rows,
                            size_t p, const float *bias, const product_output *out);

#endif
