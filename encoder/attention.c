/* attention.c — attention and the vector maths of the forward pass (LayerNorm, GELU), beside
 * the matrix products of gemm.c whose kernel they use (gemm_internal.h).
 *
 * Attention runs our product kernel per head on blocks of QUERY_BLOCK queries (keys transposed
 * into panels in registers, the scores of a block staying in L2); in bf16 mode the probabilities
 * and values are bf16, the scores float32. Why our own rather than OpenBLAS: see gemm.c.
 */
#include "encoder_status.h"
#include "gemm_internal.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- packing keys and values -------------------------------------------------------------- */

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

#if GEMM_HAVE_X86
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
#endif /* GEMM_HAVE_X86 */

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
                    gemm_block_times_panel(&keys[h], qb, ld_qkv, 0, rows, p, NULL, &to_scores);
                float *out = ctx + (size_t)r0 * D + (size_t)h * hd;
                product_output to_ctx = to_floats(out, (size_t)D);
                if (!bf16) {
                    softmax_block(scores, rows, T, (size_t)T, scale);
                    for (size_t p = 0; p < panel_count(hd); p++)
                        gemm_block_times_panel(&values[h], scores, (size_t)T, 0, rows, p, NULL,
                                          &to_ctx);
                    continue;
                }
                softmax_block_bf16(scores, rows, T, (size_t)T, scale, probabilities,
                                   (size_t)even(T), inv);
                for (size_t p = 0; p < panel_count(hd); p++)
                    gemm_block_times_panel(&values[h], probabilities, (size_t)even(T), 0, rows, p,
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
