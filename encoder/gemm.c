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
 * Attention (attention.c) uses the same kernel per head on blocks of 48 queries (keys transposed
 * into panels in registers, the scores of a block staying in L2); in bf16 mode the probabilities
 * and values are bf16, the scores float32.
 */
#include "encoder_status.h"
#include "gemm_internal.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>


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


/* One task: rows [r0, r0+rows) of x times panel p, all of k, in K_CHUNK passes. x is float for
 * GEMM_AVX512_F32 and bf16 (row stride ldx elements) for GEMM_AVX512_BF16. */
void gemm_block_times_panel(const gemm_matrix *w, const void *x, size_t ldx, int r0, int rows,
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
            gemm_block_times_panel(w, x, ldx, r0, rows, (size_t)p, bias, out);
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

