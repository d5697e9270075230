/* gemm.c — the matrix products of the forward pass.
 *
 * Three kernels compute y = x W^T (+ bias):
 *   GEMM_BLAS         OpenBLAS sgemm on the weights as they are in the file (any CPU);
 *   GEMM_AVX512_F32   our AVX-512 float32 kernel on weights packed once at load;
 *   GEMM_AVX512_BF16  our AVX-512 BF16 kernel (vdpbf16ps: bf16 products, float32 sums) on
 *                     weights converted to bf16 and packed once at load.
 * Why our own: Debian's OpenBLAS 0.3.21 runs its AVX2 (Haswell) kernels on current AMD CPUs
 * (and OPENBLAS_CORETYPE=Haswell is often forced there), leaving half of an AVX-512 core idle,
 * and it has no fast bf16 GEMM at all.
 *
 * Packed layout ("panels"): W [n, k] becomes ceil(n / 64) panels; panel p holds, for every k,
 * the 64 values W[64p + j][k] (j = 0..63, zero past n) next to each other, so the kernel reads
 * four vectors per k. For bf16, k goes in pairs: for every pair, the 64 columns x 2 values.
 *
 * The micro-kernel keeps a 6 x 64 block of y in 24 zmm registers and, for each k, broadcasts
 * one x value per row against the panel's four vectors: 24 FMAs per 4 loads + 6 broadcasts.
 * Its last k pass can apply GELU and, in bf16, store the tile rounded to bf16 for the next
 * product, so the MLP's wide activations are written once (gemm_linear_gelu).
 *
 * Attention uses the same kernel per head on blocks of 48 queries (keys transposed into panels
 * in registers, the scores of a block staying in L2); in bf16 mode the probabilities and values
 * are bf16, the scores float32.
 */
#include "encoder_status.h"
#include "gemm.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

bool gemm_cpu_has_avx512(void)
{
#if GEMM_HAVE_X86
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

bool gemm_cpu_has_avx512_bf16(void)
{
#if GEMM_HAVE_X86
    /* GCC 12's __builtin_cpu_supports knows "avx512bf16". */
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

/* float -> bfloat16 with round-to-nearest-even (NaN kept quiet), as vcvtneps2bf16 does. */
uint16_t gemm_float_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

static size_t panel_count(int n)
{
    return ((size_t)n + PANEL - 1) / PANEL;
}

static int even(int k)
{
    return (k + 1) & ~1;
}

/* ---- packing ---------------------------------------------------------------------------- */

/* The weight being packed: W [n, k] stacked from `parts` matrices of `part_rows` rows each
 * (row stride ldw), so that q, k and v can become one [3D, D] product. */
typedef struct {
    const float *const *parts;
    int part_rows, n, k;
    size_t ldw;
} pack_source;

static float source_at(const pack_source *w, size_t row, int kk)
{
    if (row >= (size_t)w->n || kk >= w->k) return 0.0f;
    return w->parts[row / (size_t)w->part_rows][row % (size_t)w->part_rows * w->ldw + (size_t)kk];
}

/* Packs rows [64p, 64p + 64) of W as panel p. */
static void pack_panel_f32(const pack_source *w, size_t p, float *dst)
{
    for (int kk = 0; kk < w->k; kk++)
        for (int j = 0; j < PANEL; j++)
            dst[(size_t)kk * PANEL + (size_t)j] = source_at(w, p * PANEL + (size_t)j, kk);
}

static void pack_panel_bf16(const pack_source *w, size_t p, uint16_t *dst)
{
    int kp = even(w->k);
    for (int kk = 0; kk < kp; kk++)
        for (int j = 0; j < PANEL; j++)
            dst[((size_t)(kk / 2) * PANEL + (size_t)j) * 2 + (size_t)(kk & 1)] =
                gemm_float_to_bf16(source_at(w, p * PANEL + (size_t)j, kk));
}

static size_t packed_bytes(gemm_kernel kernel, int n, int k)
{
    size_t panels = panel_count(n);
    if (kernel == GEMM_AVX512_BF16) return panels * (size_t)even(k) * PANEL * sizeof(uint16_t);
    return panels * (size_t)k * PANEL * sizeof(float);
}

/* Attention's values as panels of the [k = T, n = hd] matrix: row t of panel p is
 * V[t][64p .. 64p + 63], a plain copy when hd is a multiple of 64. */
static void pack_values(const float *v, int T, int hd, size_t ld, void *dst)
{
    float *out = dst;
    size_t panels = panel_count(hd);
    for (size_t p = 0; p < panels; p++) {
        int cols = hd - (int)p * PANEL < PANEL ? hd - (int)p * PANEL : PANEL;
        float *panel = out + p * (size_t)T * PANEL;
        for (int t = 0; t < T; t++) {
            memcpy(panel + (size_t)t * PANEL, v + (size_t)t * ld + p * PANEL,
                   (size_t)cols * sizeof(float));
            memset(panel + (size_t)t * PANEL + cols, 0, (size_t)(PANEL - cols) * sizeof(float));
        }
    }
}

raddino_status gemm_matrix_pack_stacked(gemm_kernel kernel, const float *const *parts,
                                        int n_parts, int part_rows, int k, size_t ldw,
                                        gemm_matrix *out)
{
    memset(out, 0, sizeof *out);
    int n = n_parts * part_rows;
    out->kernel = kernel;
    out->n = n;
    out->k = k;
    if (kernel == GEMM_BLAS) {
        if (n_parts != 1)
            return status_error(RADDINO_ERR_ARGUMENT, "OpenBLAS weights cannot be stacked");
        out->plain = parts[0];
        out->ld = ldw;
        return status_ok();
    }
    size_t bytes = packed_bytes(kernel, n, k);
    out->panels = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!out->panels)
        return status_error(RADDINO_ERR_NOMEM, "out of memory packing a %dx%d weight", n, k);
    pack_source source = {.parts = parts, .part_rows = part_rows, .n = n, .k = k, .ldw = ldw};
    size_t panels = panel_count(n);
    #pragma omp parallel for schedule(static)
    for (size_t p = 0; p < panels; p++) {
        if (kernel == GEMM_AVX512_BF16)
            pack_panel_bf16(&source, p, (uint16_t *)out->panels + p * (size_t)even(k) * PANEL);
        else
            pack_panel_f32(&source, p, (float *)out->panels + p * (size_t)k * PANEL);
    }
    return status_ok();
}

raddino_status gemm_matrix_pack(gemm_kernel kernel, const float *w, int n, int k, size_t ldw,
                                gemm_matrix *out)
{
    return gemm_matrix_pack_stacked(kernel, &w, 1, n, k, ldw, out);
}

/* Once packed, the weights in the mapped file are not read again: hand their pages back, so the
 * resident size holds one copy of the weights, not two, at every moment of the load. Only the
 * whole pages inside the matrix are released; anything sharing a page stays. If the memory is
 * not a file mapping (converted F16/BF16 tensors), MADV_DONTNEED would zero it: the caller
 * only asks for mapped F32 tensors. */
void gemm_release_source(const float *w, size_t bytes)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t begin = ((uintptr_t)w + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)w + bytes) & ~(page - 1);
    if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
}

void gemm_matrix_free(gemm_matrix *m)
{
    free(m->panels);
    m->panels = NULL;
}

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

__attribute__((target("avx512f"))) static void gelu_avx512(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm512_storeu_ps(x + i, gelu_vector(_mm512_loadu_ps(x + i)));
    }
    for (; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

#endif

/* ---- micro-kernels -------------------------------------------------------------------- */

/* What the last k pass does with a tile before it leaves the registers: GELU, and/or (bf16
 * kernel) the result rounded to bf16 into `bf16` (row stride bf16_ld) instead of float32 into
 * y, ready to be the next product's input. */
typedef struct {
    bool gelu;
    uint16_t *bf16;
    size_t bf16_ld;
} tile_finish;

#if GEMM_HAVE_X86

/* Masks for the four 16-column groups of a panel when only `cols` (1..64) are wanted. */
static void column_masks(int cols, __mmask16 mask[4])
{
    for (int g = 0; g < 4; g++) {
        int left = cols - 16 * g;
        mask[g] = left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
    }
}

/* The body shared by both kernels: load or clear the 6 x 64 accumulators, run the k loop
 * (STEP is the per-k update), store the rows that exist. */
#define TILE_DECLARE                                                                         \
    __m512 c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33, \
        c40, c41, c42, c43, c50, c51, c52, c53

#define TILE_ROW_INIT(i)                                                                     \
    do {                                                                                     \
        if (init && (i) < rows) {                                                            \
            c##i##0 = _mm512_maskz_loadu_ps(mask[0], init + (size_t)(i) * ldc);              \
            c##i##1 = _mm512_maskz_loadu_ps(mask[1], init + (size_t)(i) * ldc + 16);         \
            c##i##2 = _mm512_maskz_loadu_ps(mask[2], init + (size_t)(i) * ldc + 32);         \
            c##i##3 = _mm512_maskz_loadu_ps(mask[3], init + (size_t)(i) * ldc + 48);         \
        } else if (bias) {                                                                   \
            c##i##0 = _mm512_maskz_loadu_ps(mask[0], bias);                                  \
            c##i##1 = _mm512_maskz_loadu_ps(mask[1], bias + 16);                             \
            c##i##2 = _mm512_maskz_loadu_ps(mask[2], bias + 32);                             \
            c##i##3 = _mm512_maskz_loadu_ps(mask[3], bias + 48);                             \
        } else {                                                                             \
            c##i##0 = c##i##1 = c##i##2 = c##i##3 = _mm512_setzero_ps();                     \
        }                                                                                    \
    } while (0)

#define TILE_ROW_STORE(i)                                                                    \
    do {                                                                                     \
        if ((i) < rows) {                                                                    \
            _mm512_mask_storeu_ps(c + (size_t)(i) * ldc, mask[0], c##i##0);                  \
            _mm512_mask_storeu_ps(c + (size_t)(i) * ldc + 16, mask[1], c##i##1);             \
            _mm512_mask_storeu_ps(c + (size_t)(i) * ldc + 32, mask[2], c##i##2);             \
            _mm512_mask_storeu_ps(c + (size_t)(i) * ldc + 48, mask[3], c##i##3);             \
        }                                                                                    \
    } while (0)

#define TILE_ROW_GELU(i)                                                                     \
    do {                                                                                     \
        c##i##0 = gelu_vector(c##i##0);                                                      \
        c##i##1 = gelu_vector(c##i##1);                                                      \
        c##i##2 = gelu_vector(c##i##2);                                                      \
        c##i##3 = gelu_vector(c##i##3);                                                      \
    } while (0)

#define TILE_ROW_STORE_BF16(i)                                                               \
    do {                                                                                     \
        if ((i) < rows) {                                                                    \
            uint16_t *o = finish->bf16 + (size_t)(i) * finish->bf16_ld;                      \
            _mm512_mask_storeu_epi16(o, low, (__m512i)_mm512_cvtne2ps_pbh(c##i##1, c##i##0)); \
            _mm512_mask_storeu_epi16(o + 32, high,                                           \
                                     (__m512i)_mm512_cvtne2ps_pbh(c##i##3, c##i##2));        \
        }                                                                                    \
    } while (0)

#define TILE_INIT_ALL                                                                        \
    do {                                                                                     \
        TILE_ROW_INIT(0); TILE_ROW_INIT(1); TILE_ROW_INIT(2);                                \
        TILE_ROW_INIT(3); TILE_ROW_INIT(4); TILE_ROW_INIT(5);                                \
    } while (0)
#define TILE_STORE_ALL                                                                       \
    do {                                                                                     \
        TILE_ROW_STORE(0); TILE_ROW_STORE(1); TILE_ROW_STORE(2);                             \
        TILE_ROW_STORE(3); TILE_ROW_STORE(4); TILE_ROW_STORE(5);                             \
    } while (0)
#define TILE_GELU_ALL                                                                        \
    do {                                                                                     \
        TILE_ROW_GELU(0); TILE_ROW_GELU(1); TILE_ROW_GELU(2);                                \
        TILE_ROW_GELU(3); TILE_ROW_GELU(4); TILE_ROW_GELU(5);                                \
    } while (0)
#define TILE_STORE_BF16_ALL                                                                  \
    do {                                                                                     \
        TILE_ROW_STORE_BF16(0); TILE_ROW_STORE_BF16(1); TILE_ROW_STORE_BF16(2);              \
        TILE_ROW_STORE_BF16(3); TILE_ROW_STORE_BF16(4); TILE_ROW_STORE_BF16(5);              \
    } while (0)

/* c[rows, cols] = (init ? init : bias ? bias : 0) + a[rows, kc] * panel[kc, 64].
 * a: float rows with stride lda (missing rows point at row 0: computed, never stored). */
__attribute__((target("avx512f"))) static void
kernel_f32(int kc, const float *const a[TILE_ROWS], const float *panel, const float *bias,
           const float *init, float *c, size_t ldc, int rows, const __mmask16 mask[4],
           const tile_finish *finish)
{
    TILE_DECLARE;
    TILE_INIT_ALL;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
#define F32_ROW(i)                                                                           \
    do {                                                                                     \
        __m512 x = _mm512_set1_ps(a##i[k]);                                                  \
        c##i##0 = _mm512_fmadd_ps(x, b0, c##i##0);                                           \
        c##i##1 = _mm512_fmadd_ps(x, b1, c##i##1);                                           \
        c##i##2 = _mm512_fmadd_ps(x, b2, c##i##2);                                           \
        c##i##3 = _mm512_fmadd_ps(x, b3, c##i##3);                                           \
    } while (0)
    for (int k = 0; k < kc; k++) {
        const float *b = panel + (size_t)k * PANEL;
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        __m512 b2 = _mm512_load_ps(b + 32), b3 = _mm512_load_ps(b + 48);
        F32_ROW(0); F32_ROW(1); F32_ROW(2); F32_ROW(3); F32_ROW(4); F32_ROW(5);
    }
#undef F32_ROW
    if (finish && finish->gelu) TILE_GELU_ALL;
    TILE_STORE_ALL;
}

/* Same with bf16 inputs: a rows hold bf16 pairs (k, k+1) read as one 32-bit broadcast;
 * kp = number of pairs. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void
kernel_bf16(int kp, const uint16_t *const a[TILE_ROWS], const uint16_t *panel, const float *bias,
            const float *init, float *c, size_t ldc, int rows, const __mmask16 mask[4],
            const tile_finish *finish)
{
    TILE_DECLARE;
    TILE_INIT_ALL;
    const uint16_t *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
#define BF16_ROW(i)                                                                          \
    do {                                                                                     \
        int32_t pair;                                                                        \
        memcpy(&pair, a##i + 2 * (size_t)k, sizeof pair);                                    \
        __m512bh x = (__m512bh)_mm512_set1_epi32(pair);                                      \
        c##i##0 = _mm512_dpbf16_ps(c##i##0, x, b0);                                          \
        c##i##1 = _mm512_dpbf16_ps(c##i##1, x, b1);                                          \
        c##i##2 = _mm512_dpbf16_ps(c##i##2, x, b2);                                          \
        c##i##3 = _mm512_dpbf16_ps(c##i##3, x, b3);                                          \
    } while (0)
    for (int k = 0; k < kp; k++) {
        const uint16_t *b = panel + (size_t)k * PANEL * 2;
        __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 32);
        __m512bh b2 = (__m512bh)_mm512_load_si512(b + 64);
        __m512bh b3 = (__m512bh)_mm512_load_si512(b + 96);
        BF16_ROW(0); BF16_ROW(1); BF16_ROW(2); BF16_ROW(3); BF16_ROW(4); BF16_ROW(5);
    }
#undef BF16_ROW
    if (finish && finish->gelu) TILE_GELU_ALL;
    if (finish && finish->bf16) {
        __mmask32 low = (__mmask32)mask[0] | (__mmask32)mask[1] << 16;
        __mmask32 high = (__mmask32)mask[2] | (__mmask32)mask[3] << 16;
        TILE_STORE_BF16_ALL;
        return;
    }
    TILE_STORE_ALL;
}

/* The same values as bf16 panels of [k = T, n = hd]: pairs of tokens (t, t + 1) interleaved per
 * column, as pack_panel_bf16 lays out weights (a zero token pads odd T): each 32-bit word holds
 * V[t][col] in its low half and V[t + 1][col] in its high half. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void
pack_values_bf16(const float *v, int T, int hd, size_t ld, void *dst)
{
    uint16_t *out = dst;
    size_t panels = panel_count(hd);
    int pairs = even(T) / 2;
    for (size_t p = 0; p < panels; p++) {
        int cols = hd - (int)p * PANEL < PANEL ? hd - (int)p * PANEL : PANEL;
        __mmask16 mask[4];
        column_masks(cols, mask);
        uint16_t *panel = out + p * (size_t)even(T) * PANEL;
        for (int t2 = 0; t2 < pairs; t2++) {
            const float *low = v + (size_t)(2 * t2) * ld + p * PANEL;
            const float *high = 2 * t2 + 1 < T ? low + ld : NULL;
            for (int g = 0; g < 4; g++) {
                __m512 a = _mm512_maskz_loadu_ps(mask[g], low + 16 * g);
                __m512 b = high ? _mm512_maskz_loadu_ps(mask[g], high + 16 * g) : _mm512_setzero_ps();
                __m512i a16 = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(a));
                __m512i b16 = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(b));
                _mm512_store_si512(panel + ((size_t)t2 * PANEL + 16 * (size_t)g) * 2,
                                   _mm512_or_si512(a16, _mm512_slli_epi32(b16, 16)));
            }
        }
    }
}

/* out[j] = column j of the 16 x 16 block in[0..15] (in-register transpose: unpack pairs of
 * floats, then pairs of doubles, then 128-bit lanes twice). */
__attribute__((target("avx512f"))) static void transpose16(const __m512 in[16], __m512 out[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(in[2 * i], in[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(in[2 * i], in[2 * i + 1]);
    }
    /* u[4g + j]: rows 4g..4g+3 at elements j, j + 4, j + 8, j + 12 (one per 128-bit lane). */
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
        __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int j = 0; j < 4; j++) {
        __m512 x0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
        __m512 x1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);
        __m512 y0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
        __m512 y1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
        out[j] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        out[j + 8] = _mm512_shuffle_f32x4(x0, y0, 0xdd);
        out[j + 4] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        out[j + 12] = _mm512_shuffle_f32x4(x1, y1, 0xdd);
    }
}

/* Attention's keys as panels: panel p, row d holds K[64p + j][d] for j = 0..63 (zero past T),
 * a 64 x hd transpose per panel, done as 16 x 16 blocks in registers. */
__attribute__((target("avx512f"))) static void pack_keys(const float *k, int T, int hd,
                                                          size_t ld, void *dst)
{
    float *out = dst;
    size_t panels = panel_count(T);
    for (size_t p = 0; p < panels; p++) {
        float *panel = out + p * (size_t)hd * PANEL;
        for (int g = 0; g < 4; g++) {
            int key0 = (int)p * PANEL + 16 * g;
            for (int d0 = 0; d0 < hd; d0 += 16) {
                int width = hd - d0 < 16 ? hd - d0 : 16;
                __mmask16 dmask = (__mmask16)((1u << width) - 1);
                __m512 in[16], col[16];
                for (int i = 0; i < 16; i++)
                    in[i] = key0 + i < T
                                ? _mm512_maskz_loadu_ps(dmask, k + (size_t)(key0 + i) * ld + d0)
                                : _mm512_setzero_ps();
                transpose16(in, col);
                for (int d = 0; d < width; d++)
                    _mm512_store_ps(panel + (size_t)(d0 + d) * PANEL + 16 * g, col[d]);
            }
        }
    }
}

/* Converts rows of float x to bf16 (k padded to even with a zero). */
__attribute__((target("avx512f,avx512bf16"))) static void
rows_to_bf16(const float *x, int rows, int k, size_t ldx, uint16_t *dst, size_t ldd)
{
    for (int r = 0; r < rows; r++) {
        const float *src = x + (size_t)r * ldx;
        uint16_t *out = dst + (size_t)r * ldd;
        int j = 0;
        for (; j + 32 <= k; j += 32) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + j + 16), _mm512_loadu_ps(src + j));
            _mm512_storeu_si512(out + j, (__m512i)v);
        }
        for (; j < k; j++) out[j] = gemm_float_to_bf16(src[j]);
        if (k & 1) out[k] = 0;
    }
}

#endif /* GEMM_HAVE_X86 */

/* ---- products -------------------------------------------------------------------------- */

/* Where a product's result goes: y (float32, also the partial sums between k passes), then
 * optionally GELU and, for the bf16 kernel, bf16 output (see tile_finish). */
typedef struct {
    float *y;
    size_t ldy;
    bool gelu;
    uint16_t *bf16;
    size_t bf16_ld;
} product_output;

/* One task: rows [r0, r0+rows) of x times panel p, all of k, in K_CHUNK passes. x is float for
 * GEMM_AVX512_F32 and bf16 (row stride ldx elements) for GEMM_AVX512_BF16. */
static void block_times_panel(const gemm_matrix *w, const void *x, size_t ldx, int r0, int rows,
                              size_t p, const float *bias, const product_output *out)
{
#if GEMM_HAVE_X86
    __mmask16 mask[4];
    int cols = w->n - (int)p * PANEL;
    column_masks(cols < PANEL ? cols : PANEL, mask);
    const float *panel_bias = bias ? bias + p * PANEL : NULL;
    bool bf16 = w->kernel == GEMM_AVX512_BF16;
    int k_total = bf16 ? even(w->k) : w->k;
    for (int k0 = 0; k0 < k_total; k0 += K_CHUNK) {
        int kc = k_total - k0 < K_CHUNK ? k_total - k0 : K_CHUNK;
        bool last = k0 + kc == k_total;
        for (int t = 0; t < rows; t += TILE_ROWS) {
            int tile_rows = rows - t < TILE_ROWS ? rows - t : TILE_ROWS;
            float *c = out->y + (size_t)(r0 + t) * out->ldy + p * PANEL;
            const float *init = k0 ? c : NULL;
            tile_finish finish = {.gelu = out->gelu};
            if (out->bf16) finish.bf16 = out->bf16 + (size_t)(r0 + t) * out->bf16_ld + p * PANEL;
            finish.bf16_ld = out->bf16_ld;
            const tile_finish *f = last && (out->gelu || out->bf16) ? &finish : NULL;
            if (bf16) {
                const uint16_t *xb = (const uint16_t *)x, *a[TILE_ROWS];
                for (int i = 0; i < TILE_ROWS; i++)
                    a[i] = xb + (size_t)(r0 + t + (i < tile_rows ? i : 0)) * ldx + k0;
                const uint16_t *panel = (const uint16_t *)w->panels +
                                        (p * (size_t)k_total + (size_t)k0) * PANEL;
                kernel_bf16(kc / 2, a, panel, panel_bias, init, c, out->ldy, tile_rows, mask, f);
            } else {
                const float *xf = (const float *)x, *a[TILE_ROWS];
                for (int i = 0; i < TILE_ROWS; i++)
                    a[i] = xf + (size_t)(r0 + t + (i < tile_rows ? i : 0)) * ldx + k0;
                const float *panel = (const float *)w->panels +
                                     (p * (size_t)k_total + (size_t)k0) * PANEL;
                kernel_f32(kc, a, panel, panel_bias, init, c, out->ldy, tile_rows, mask, f);
            }
        }
    }
#else
    (void)w, (void)x, (void)ldx, (void)r0, (void)rows, (void)p, (void)bias, (void)out;
#endif
}

/* The plain output: y only. */
static product_output to_floats(float *y, size_t ldy)
{
    return (product_output){.y = y, .ldy = ldy};
}

/* out = x[m, k] W^T + bias, every task (row block, panel) on its own. Call from inside a
 * parallel region or not: uses orphaned `omp for`. */
static void packed_product(const gemm_matrix *w, const void *x, size_t ldx, int m,
                           const float *bias, const product_output *out)
{
    int blocks = (m + BLOCK_ROWS - 1) / BLOCK_ROWS;
    int panels = (int)panel_count(w->n);
    #pragma omp for schedule(static) collapse(2)
    for (int b = 0; b < blocks; b++)
        for (int p = 0; p < panels; p++) {
            int r0 = b * BLOCK_ROWS;
            int rows = m - r0 < BLOCK_ROWS ? m - r0 : BLOCK_ROWS;
            block_times_panel(w, x, ldx, r0, rows, (size_t)p, bias, out);
        }
}

static void blas_linear(const gemm_matrix *w, const float *x, int m, size_t ldx,
                        const float *bias, float *y, size_t ldy)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, w->n, w->k, 1.0f, x, (int)ldx,
                w->plain, (int)w->ld, 0.0f, y, (int)ldy);
    if (!bias) return;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < m; r++)
        for (int j = 0; j < w->n; j++) y[(size_t)r * ldy + j] += bias[j];
}

/* GELU of n values on the calling thread. */
static void vector_gelu_row(float *x, size_t n)
{
#if GEMM_HAVE_X86
    if (gemm_cpu_has_avx512()) {
        gelu_avx512(x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

/* Our kernels: converts x to bf16 first when the weights are bf16. */
static void packed_linear(const gemm_matrix *w, const float *x, int m, size_t ldx,
                          const float *bias, const product_output *out, uint16_t *bf16_scratch)
{
#if GEMM_HAVE_X86
    if (w->kernel == GEMM_AVX512_BF16) {
        size_t ld = (size_t)even(w->k);
        #pragma omp parallel
        {
            #pragma omp for schedule(static)
            for (int r = 0; r < m; r += 16)
                rows_to_bf16(x + (size_t)r * ldx, m - r < 16 ? m - r : 16, w->k, ldx,
                             bf16_scratch + (size_t)r * ld, ld);
            packed_product(w, bf16_scratch, ld, m, bias, out);
        }
        return;
    }
    #pragma omp parallel
    packed_product(w, x, ldx, m, bias, out);
#else
    (void)w, (void)x, (void)m, (void)ldx, (void)bias, (void)out, (void)bf16_scratch;
#endif
}

void gemm_linear(const gemm_matrix *w, const float *x, int m, size_t ldx, const float *bias,
                 float *y, size_t ldy, uint16_t *bf16_scratch)
{
    if (w->kernel == GEMM_BLAS) {
        blas_linear(w, x, m, ldx, bias, y, ldy);
        return;
    }
    product_output out = to_floats(y, ldy);
    packed_linear(w, x, m, ldx, bias, &out, bf16_scratch);
}

void gemm_linear_gelu(const gemm_matrix *w, const float *x, int m, size_t ldx, const float *bias,
                      float *y, size_t ldy, uint16_t *bf16_scratch, uint16_t *y_bf16)
{
    if (w->kernel == GEMM_BLAS) {
        blas_linear(w, x, m, ldx, bias, y, ldy);
        #pragma omp parallel for schedule(static)
        for (int r = 0; r < m; r++) vector_gelu_row(y + (size_t)r * ldy, (size_t)w->n);
        return;
    }
    product_output out = {.y = y, .ldy = ldy, .gelu = true};
    if (w->kernel == GEMM_AVX512_BF16 && y_bf16) {
        out.bf16 = y_bf16;
        out.bf16_ld = (size_t)even(w->n);
    }
    packed_linear(w, x, m, ldx, bias, &out, bf16_scratch);
    /* The padding column of an odd n is the next product's zero pair partner. */
    for (int r = 0; out.bf16 && (w->n & 1) && r < m; r++) y_bf16[(size_t)r * out.bf16_ld + w->n] = 0;
}

void gemm_linear_bf16_input(const gemm_matrix *w, const uint16_t *x, int m, const float *bias,
                            float *y, size_t ldy)
{
    product_output out = to_floats(y, ldy);
    #pragma omp parallel
    packed_product(w, x, (size_t)even(w->k), m, bias, &out);
}

/* ---- attention --------------------------------------------------------------------------- */

#define QUERY_BLOCK 48      /* query rows per task: their scores (48 x T) stay in L2 */

/* In bf16 mode only the second product of attention, probabilities times values, takes bf16
 * inputs: the probabilities lie in [0, 1] and their rounding errors average out over the
 * tokens. The scores q k^T stay float32: their errors pass through exp, and rounding q and k
 * to bf16 moved the CLS of a golden image to cosine 0.99991 of float32 (against 0.99996
 * with float32 scores). */
/* The scratch is laid out for either kernel, so that one run state serves layers whose
 * second product differs (see vit.c's precision plan): value slots of the float32 size (bf16
 * values take half of one), and every thread's block room for the bf16 probabilities. */
static size_t value_bytes(int tokens, int hd)
{
    return packed_bytes(GEMM_AVX512_F32, hd, tokens);
}

/* Per thread: the float32 scores of one query block, then (bf16) the probabilities. */
static size_t block_bytes(int tokens)
{
    size_t scores = (size_t)QUERY_BLOCK * (size_t)tokens * sizeof(float);
    size_t probabilities = (size_t)QUERY_BLOCK * (size_t)even(tokens) * sizeof(uint16_t);
    return (scores + 63) / 64 * 64 + probabilities;
}

size_t gemm_attention_scratch_bytes(int tokens, int hidden, int heads, int threads)
{
    int hd = hidden / heads;
    size_t packed = (size_t)heads * (packed_bytes(GEMM_AVX512_F32, tokens, hd) +
                                     value_bytes(tokens, hd));
    return packed + (size_t)threads * block_bytes(tokens) +
           64 * ((size_t)2 * heads + (size_t)threads + 1);
}

#if GEMM_HAVE_X86
/* The largest of row[0 .. full + popcount(tail)), full a multiple of 16. */
__attribute__((target("avx512f"))) static inline float row_max(const float *row, int full,
                                                                __mmask16 tail)
{
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < full; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(row + j));
    if (tail) vmax = _mm512_mask_max_ps(vmax, tail, vmax, _mm512_maskz_loadu_ps(tail, row + full));
    return _mm512_reduce_max_ps(vmax);
}

/* Row-wise softmax of s * scale (scale > 0), as exp((s - max) * scale) / sum. */
__attribute__((target("avx512f"))) static void softmax_block(float *s, int rows, int cols,
                                                              size_t lds, float scale)
{
    __mmask16 tail = (__mmask16)((1u << (cols % 16)) - 1);
    int full = cols - cols % 16;
    __m512 vscale = _mm512_set1_ps(scale);
    for (int r = 0; r < rows; r++) {
        float *row = s + (size_t)r * lds;
        __m512 m = _mm512_set1_ps(row_max(row, full, tail));
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < full; j += 16) {
            __m512 e = exp_nonpositive(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(row + j), m), vscale));
            _mm512_storeu_ps(row + j, e);
            sum = _mm512_add_ps(sum, e);
        }
        if (tail) {
            __m512 x = _mm512_mask_loadu_ps(m, tail, row + full);
            __m512 e = exp_nonpositive(_mm512_mul_ps(_mm512_sub_ps(x, m), vscale));
            e = _mm512_maskz_mov_ps(tail, e);
            _mm512_mask_storeu_ps(row + full, tail, e);
            sum = _mm512_add_ps(sum, e);
        }
        __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
        for (int j = 0; j < full; j += 16)
            _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), inv));
        if (tail)
            _mm512_mask_storeu_ps(row + full, tail,
                                  _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, row + full), inv));
    }
}

/* 2^x for x <= 0, to about 3e-6 relative: enough where the result is rounded to bf16 (2^-9).
 * x = n + r with |r| <= 1/2, 2^r by a degree-4 polynomial fitted for relative error, times 2^n
 * with vscalefps. */
__attribute__((target("avx512f"))) static inline __m512 exp2_for_bf16(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-127.0f));
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(0.009560510516166687f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.05591703951358795f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.24024981260299683f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.6931219696998596f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.9999991655349731f));
    return _mm512_scalef_ps(p, n);
}

/* The same softmax for the bf16 product: writes exp((s - max) * scale) rounded to bf16 into
 * prob (row stride ldp, a zero after an odd cols) and 1 / sum into inv[r]; the caller scales
 * the product's rows, which saves a pass over the probabilities. exp(y) is computed as
 * 2^(y log2 e) with the short polynomial above, its error far below the bf16 rounding that
 * follows. The sums are of the float32 values (rounding to nearest even has no bias). */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
softmax_block_bf16(const float *s, int rows, int cols, size_t lds, float scale, uint16_t *prob,
                   size_t ldp, float *inv)
{
    __mmask16 tail = (__mmask16)((1u << (cols % 16)) - 1);
    int full = cols - cols % 16;
    __m512 c = _mm512_set1_ps(scale * 1.44269504088896341f);
    for (int r = 0; r < rows; r++) {
        const float *row = s + (size_t)r * lds;
        uint16_t *out = prob + (size_t)r * ldp;
        __m512 mc = _mm512_mul_ps(_mm512_set1_ps(row_max(row, full, tail)), c);
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < full; j += 16) {
            __m512 e = exp2_for_bf16(_mm512_fmsub_ps(_mm512_loadu_ps(row + j), c, mc));
            _mm256_storeu_si256((__m256i *)(out + j), (__m256i)_mm512_cvtneps_pbh(e));
            sum = _mm512_add_ps(sum, e);
        }
        if (tail) {
            __m512 e = exp2_for_bf16(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(tail, row + full), c, mc));
            e = _mm512_maskz_mov_ps(tail, e);
            _mm256_mask_storeu_epi16(out + full, tail, (__m256i)_mm512_cvtneps_pbh(e));
            sum = _mm512_add_ps(sum, e);
        }
        if (cols & 1) out[cols] = 0;
        inv[r] = 1.0f / _mm512_reduce_add_ps(sum);
    }
}
#endif


#if GEMM_HAVE_X86
/* One row of LayerNorm: mean, then the biased variance around it (two passes, as a float64
 * reference would, so no cancellation), 16 lanes of float32 partial sums. */
__attribute__((target("avx512f"))) static void layer_norm_row_avx512(const float *x, int D,
                                                                      const float *gamma,
                                                                      const float *beta, float eps,
                                                                      float *y)
{
    __mmask16 tail = (__mmask16)((1u << (D % 16)) - 1);
    int full = D - D % 16;
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < full; j += 16) sum = _mm512_add_ps(sum, _mm512_loadu_ps(x + j));
    sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(tail, x + full));
    __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(sum) / (float)D);
    __m512 sq = _mm512_setzero_ps();
    for (int j = 0; j < full; j += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + j), mean);
        sq = _mm512_fmadd_ps(d, d, sq);
    }
    __m512 d = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, x + full), mean);
    sq = _mm512_fmadd_ps(d, d, sq);
    float rstd = 1.0f / sqrtf(_mm512_reduce_add_ps(sq) / (float)D + eps);
    __m512 r = _mm512_set1_ps(rstd);
    for (int j = 0; j < full; j += 16) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j), mean), r);
        _mm512_storeu_ps(y + j, _mm512_fmadd_ps(v, _mm512_loadu_ps(gamma + j),
                                                _mm512_loadu_ps(beta + j)));
    }
    if (tail) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + full), mean), r);
        _mm512_mask_storeu_ps(y + full, tail,
                              _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(tail, gamma + full),
                                              _mm512_maskz_loadu_ps(tail, beta + full)));
    }
}
#endif

/* Biased variance, as torch.nn.LayerNorm; the portable path keeps its statistics in double. */
static void layer_norm_row(const float *x, int D, const float *gamma, const float *beta, float eps,
                           float *y)
{
    double sum = 0, sum2 = 0;
    for (int j = 0; j < D; j++) sum += x[j];
    double mean = sum / D;
    for (int j = 0; j < D; j++) sum2 += (x[j] - mean) * (x[j] - mean);
    float rstd = (float)(1.0 / sqrt(sum2 / D + (double)eps));
    float m = (float)mean;
    for (int j = 0; j < D; j++) y[j] = (x[j] - m) * rstd * gamma[j] + beta[j];
}

void vector_layer_norm(const float *x, int rows, int D, const float *gamma, const float *beta,
                       float eps, float *y)
{
    bool wide = gemm_cpu_has_avx512();
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * D;
        float *yr = y + (size_t)r * D;
#if GEMM_HAVE_X86
        if (wide) {
            layer_norm_row_avx512(xr, D, gamma, beta, eps, yr);
            continue;
        }
#endif
        layer_norm_row(xr, D, gamma, beta, eps, yr);
    }
    (void)wide;
}

void vector_gelu(float *x, size_t n)
{
    size_t chunk = 4096;
    size_t chunks = (n + chunk - 1) / chunk;
    #pragma omp parallel for schedule(static)
    for (size_t c = 0; c < chunks; c++)
        vector_gelu_row(x + c * chunk, n - c * chunk < chunk ? n - c * chunk : chunk);
}

static uint8_t *align64(uint8_t *p)
{
    return (uint8_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* ctx = softmax(q k^T * scale) v per head, q/k/v rows with stride ld_qkv, ctx [T, D].
 * Keys are packed as the B operand of the first product ([T keys, hd] read as W [n=T, k=hd]),
 * values as the B operand of the second ([T, hd] read as [k=T, n=hd]; bf16 when kernel is
 * GEMM_AVX512_BF16). Each task takes one head and QUERY_BLOCK queries, so its scores never
 * leave the cache. */
void gemm_attention(gemm_kernel kernel, const float *q, const float *k, const float *v,
                    size_t ld_qkv, int T, int D, int heads, float scale, float *ctx, void *scratch,
                    int threads)
{
#if GEMM_HAVE_X86
    int hd = D / heads;
    bool bf16 = kernel == GEMM_AVX512_BF16;
    gemm_kernel value_kernel = bf16 ? GEMM_AVX512_BF16 : GEMM_AVX512_F32;
    size_t key_bytes = packed_bytes(GEMM_AVX512_F32, T, hd);
    uint8_t *base = align64(scratch);
    gemm_matrix keys[heads], values[heads];
    for (int h = 0; h < heads; h++) {
        keys[h] = (gemm_matrix){.kernel = GEMM_AVX512_F32, .n = T, .k = hd, .panels = base};
        base = align64(base + key_bytes);
        values[h] = (gemm_matrix){.kernel = value_kernel, .n = hd, .k = T, .panels = base};
        base = align64(base + value_bytes(T, hd));
    }
    size_t score_bytes = (size_t)QUERY_BLOCK * (size_t)T * sizeof(float);
    int blocks = (T + QUERY_BLOCK - 1) / QUERY_BLOCK;
    #pragma omp parallel num_threads(threads)
    {
        float *scores =
            (float *)align64(base + (size_t)omp_get_thread_num() * (block_bytes(T) + 64));
        uint16_t *probabilities = (uint16_t *)align64((uint8_t *)scores + score_bytes);
        float inv[QUERY_BLOCK];
        #pragma omp for schedule(static)
        for (int h = 0; h < heads; h++) {
            pack_keys(k + (size_t)h * hd, T, hd, ld_qkv, keys[h].panels);
            if (bf16)
                pack_values_bf16(v + (size_t)h * hd, T, hd, ld_qkv, values[h].panels);
            else
                pack_values(v + (size_t)h * hd, T, hd, ld_qkv, values[h].panels);
        }
        #pragma omp for schedule(static) collapse(2)
        for (int h = 0; h < heads; h++)
            for (int b = 0; b < blocks; b++) {
                int r0 = b * QUERY_BLOCK, rows = T - r0 < QUERY_BLOCK ? T - r0 : QUERY_BLOCK;
                const float *qb = q + (size_t)r0 * ld_qkv + (size_t)h * hd;
                product_output to_scores = to_floats(scores, (size_t)T);
                for (size_t p = 0; p < panel_count(T); p++)
                    block_times_panel(&keys[h], qb, ld_qkv, 0, rows, p, NULL, &to_scores);
                float *out = ctx + (size_t)r0 * D + (size_t)h * hd;
                product_output to_ctx = to_floats(out, (size_t)D);
                if (!bf16) {
                    softmax_block(scores, rows, T, (size_t)T, scale);
                    for (size_t p = 0; p < panel_count(hd); p++)
                        block_times_panel(&values[h], scores, (size_t)T, 0, rows, p, NULL,
                                          &to_ctx);
                    continue;
                }
                softmax_block_bf16(scores, rows, T, (size_t)T, scale, probabilities,
                                   (size_t)even(T), inv);
                for (size_t p = 0; p < panel_count(hd); p++)
                    block_times_panel(&values[h], probabilities, (size_t)even(T), 0, rows, p,
                                      NULL, &to_ctx);
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < hd; j++) out[(size_t)r * D + (size_t)j] *= inv[r];
            }
    }
#else
    (void)kernel, (void)q, (void)k, (void)v, (void)ld_qkv, (void)T, (void)D, (void)heads;
    (void)scale, (void)ctx, (void)scratch, (void)threads;
#endif
}
