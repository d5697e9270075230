/* test_gemm.c — the matrix-product kernels on shapes the ViT never uses (rows not a multiple
 * of 6, columns not a multiple of 64, odd k, k longer than one chunk) against a plain double
 * loop, and the attention kernel against a direct float64 computation.
 * Tolerances: float32 kernels 1e-5 relative to the row's magnitude; bf16 1e-2 (8-bit
 * mantissas on both inputs). */
#include "encoder_internal.h"
#include "test_util.h"

#include <check.h>
#include <omp.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float random_value(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*state >> 40) / (double)(1 << 24) * 2.0 - 1.0);
}

static float *random_matrix(size_t n, uint64_t seed)
{
    float *m = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) m[i] = random_value(&seed);
    return m;
}

/* y = x W^T + b in double. */
static void reference_linear(const float *x, int m, int k, const float *w, int n, const float *b,
                             double *y)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double sum = b ? b[j] : 0.0;
            for (int t = 0; t < k; t++) sum += (double)x[(size_t)i * k + t] * w[(size_t)j * k + t];
            y[(size_t)i * n + j] = sum;
        }
}

static void check_linear(gemm_kernel kernel, int m, int n, int k, bool bias, double tolerance)
{
    float *x = random_matrix((size_t)m * k, 1 + (uint64_t)m);
    float *w = random_matrix((size_t)n * k, 2 + (uint64_t)n);
    float *b = bias ? random_matrix((size_t)n, 3) : NULL;
    /* y has one spare column on each side: the kernel must write exactly its own. */
    size_t ldy = (size_t)n + 2;
    float *y = malloc((size_t)m * ldy * sizeof(float));
    for (size_t i = 0; i < (size_t)m * ldy; i++) y[i] = 12345.0f;
    double *ref = malloc((size_t)m * n * sizeof(double));
    uint16_t *scratch = malloc((size_t)m * (k + 2) * sizeof(uint16_t));
    gemm_matrix packed;
    ck_assert(!gemm_matrix_pack(kernel, w, n, k, (size_t)k, &packed).code);
    gemm_linear(&packed, x, m, (size_t)k, b, y + 1, ldy, scratch);
    reference_linear(x, m, k, w, n, b, ref);
    for (int i = 0; i < m; i++) {
        ck_assert_float_eq(y[(size_t)i * ldy], 12345.0f);
        ck_assert_float_eq(y[(size_t)i * ldy + n + 1], 12345.0f);
        for (int j = 0; j < n; j++) {
            double got = y[(size_t)i * ldy + 1 + j], want = ref[(size_t)i * n + j];
            ck_assert_msg(fabs(got - want) <= tolerance * sqrt((double)k),
                          "kernel %d m=%d n=%d k=%d: y[%d][%d] = %.7g, want %.7g", kernel, m, n,
                          k, i, j, got, want);
        }
    }
    gemm_matrix_free(&packed);
    free(x), free(w), free(b), free(y), free(ref), free(scratch);
}

/* The last two: the ViT's 1370 tokens (row blocks of unequal split, a partial last tile) and
 * fc2's long k (3072 + 1: many k passes, an odd tail). */
static const int shapes[][3] = {{1, 1, 1},      {5, 63, 7},     {6, 64, 64},   {7, 65, 385},
                                {13, 130, 3},   {49, 100, 769}, {50, 1, 400},  {97, 200, 33},
                                {1370, 130, 97}, {143, 70, 3073}};

START_TEST(linear_float32)
{
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        check_linear(GEMM_BLAS, shapes[s][0], shapes[s][1], shapes[s][2], s % 2, 1e-5);
        if (gemm_cpu_has_avx512())
            check_linear(GEMM_AVX512_F32, shapes[s][0], shapes[s][1], shapes[s][2], s % 2, 1e-5);
    }
}
END_TEST

START_TEST(linear_bf16)
{
    if (!gemm_cpu_has_avx512_bf16()) return;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        check_linear(GEMM_AVX512_BF16, shapes[s][0], shapes[s][1], shapes[s][2], s % 2, 1e-2);
}
END_TEST

/* Every output element is one sum in a fixed k order whatever thread computes it: the same
 * product on 1 and on 2 threads is bit-identical (results stay deterministic). */
static void check_thread_independent(gemm_kernel kernel)
{
    int m = 1370, n = 200, k = 769;
    float *x = random_matrix((size_t)m * k, 11), *w = random_matrix((size_t)n * k, 12);
    float *y1 = malloc((size_t)m * n * sizeof(float)), *y2 = malloc((size_t)m * n * sizeof(float));
    uint16_t *scratch = malloc((size_t)m * (k + 2) * sizeof(uint16_t));
    gemm_matrix packed;
    ck_assert(!gemm_matrix_pack(kernel, w, n, k, (size_t)k, &packed).code);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    gemm_linear(&packed, x, m, (size_t)k, NULL, y1, (size_t)n, scratch);
    omp_set_num_threads(2);
    gemm_linear(&packed, x, m, (size_t)k, NULL, y2, (size_t)n, scratch);
    omp_set_num_threads(threads);
    ck_assert_msg(memcmp(y1, y2, (size_t)m * n * sizeof(float)) == 0,
                  "kernel %d: 1 and 2 threads differ", kernel);
    gemm_matrix_free(&packed);
    free(x), free(w), free(y1), free(y2), free(scratch);
}

START_TEST(products_thread_independent)
{
    if (gemm_cpu_has_avx512()) check_thread_independent(GEMM_AVX512_F32);
    if (gemm_cpu_has_avx512_bf16()) check_thread_independent(GEMM_AVX512_BF16);
}
END_TEST

START_TEST(bf16_rounding)
{
    /* Round to nearest, ties to even, on the 16 bits dropped. */
    ck_assert_uint_eq(gemm_float_to_bf16(1.0f), 0x3f80);
    float halfway_down, halfway_up, above;
    uint32_t bits = 0x3f808000u;   /* 1.0 + half an ulp of bf16: tie, 0x3f80 is even */
    memcpy(&halfway_down, &bits, 4);
    bits = 0x3f818000u;            /* tie above an odd value: rounds up to 0x3f82 */
    memcpy(&halfway_up, &bits, 4);
    bits = 0x3f808001u;            /* just above the tie */
    memcpy(&above, &bits, 4);
    ck_assert_uint_eq(gemm_float_to_bf16(halfway_down), 0x3f80);
    ck_assert_uint_eq(gemm_float_to_bf16(halfway_up), 0x3f82);
    ck_assert_uint_eq(gemm_float_to_bf16(above), 0x3f81);
    ck_assert_uint_eq(gemm_float_to_bf16(-2.0f), 0xc000);
    ck_assert_uint_eq(gemm_float_to_bf16(INFINITY), 0x7f80);
    ck_assert_uint_eq(gemm_float_to_bf16(NAN) & 0x7fc0, 0x7fc0);   /* stays a NaN */
}
END_TEST

/* softmax(q k^T * scale) v per head, in double. */
static void reference_attention(const float *qkv, int T, int D, int heads, double *ctx)
{
    int hd = D / heads;
    double scale = 1.0 / sqrt((double)hd);
    double *row = malloc((size_t)T * sizeof(double));
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < T; i++) {
            double max = -INFINITY, sum = 0;
            for (int j = 0; j < T; j++) {
                double s = 0;
                for (int d = 0; d < hd; d++)
                    s += (double)qkv[(size_t)i * 3 * D + h * hd + d] *
                         qkv[(size_t)j * 3 * D + D + h * hd + d];
                row[j] = s * scale;
                if (row[j] > max) max = row[j];
            }
            for (int j = 0; j < T; j++) sum += row[j] = exp(row[j] - max);
            for (int d = 0; d < hd; d++) {
                double acc = 0;
                for (int j = 0; j < T; j++) acc += row[j] * qkv[(size_t)j * 3 * D + 2 * D + h * hd + d];
                ctx[(size_t)i * D + h * hd + d] = acc / sum;
            }
        }
    free(row);
}

/* Our attention for one kernel against the float64 reference; returns the largest difference. */
static double attention_error(gemm_kernel kernel, int T)
{
    const int D = 96, heads = 3, threads = 2;
    float *qkv = random_matrix((size_t)T * 3 * D, 7);
    for (size_t i = 0; i < (size_t)T * 3 * D; i++) qkv[i] *= 3.0f;   /* peaky softmax */
    float *ctx = malloc((size_t)T * D * sizeof(float));
    double *ref = malloc((size_t)T * D * sizeof(double));
    void *scratch = malloc(gemm_attention_scratch_bytes(T, D, heads, threads));
    gemm_attention(kernel, qkv, qkv + D, qkv + 2 * D, (size_t)3 * D, T, D, heads,
                   1.0f / sqrtf((float)(D / heads)), ctx, scratch, threads);
    reference_attention(qkv, T, D, heads, ref);
    double worst = 0;
    for (size_t i = 0; i < (size_t)T * D; i++) {
        ck_assert_msg(isfinite(ctx[i]), "ctx[%zu] = %g", i, ctx[i]);
        double d = fabs(ctx[i] - ref[i]);
        if (d > worst) worst = d;
    }
    free(qkv), free(ctx), free(ref), free(scratch);
    return worst;
}

/* T = 101 spans two key panels with a tail and is odd (a padding token for bf16 pairs);
 * T = 128 fills its panels exactly. The values are in [-3, 3]. float32: 2e-6. bf16 rounds the
 * probabilities and the values (8-bit mantissas, relative error up to 2^-9 each): 2e-2, and it
 * must differ from float32 at all (else bf16 is not in use). */
START_TEST(attention_matches_reference)
{
    if (!gemm_cpu_has_avx512()) return;
    const int tokens[] = {101, 128};
    for (int i = 0; i < 2; i++) {
        double f32 = attention_error(GEMM_AVX512_F32, tokens[i]);
        ck_assert_msg(f32 <= 2e-6, "T=%d float32 attention off by %g", tokens[i], f32);
        if (!gemm_cpu_has_avx512_bf16()) continue;
        double bf16 = attention_error(GEMM_AVX512_BF16, tokens[i]);
        ck_assert_msg(bf16 <= 2e-2 && bf16 > 1e-5, "T=%d bf16 attention off by %g", tokens[i],
                      bf16);
    }
}
END_TEST

START_TEST(gelu_matches_erf)
{
    /* The vectorised GELU against the libm form over [-10, 10] and a few special values. */
    const size_t n = 20001 + 3;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    for (size_t i = 0; i < n - 3; i++) x[i] = -10.0f + (float)i * 0.001f;
    x[n - 3] = 0.0f, x[n - 2] = -0.0f, x[n - 1] = 1e-30f;
    memcpy(y, x, n * sizeof(float));
    vector_gelu(y, n);
    for (size_t i = 0; i < n; i++) {
        double want = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
        ck_assert_msg(fabs(y[i] - want) <= 1e-6 * (1.0 + fabs(want)), "gelu(%.9g) = %.9g, want %.9g",
                      x[i], y[i], want);
    }
    free(x), free(y);
}
END_TEST

START_TEST(layer_norm_matches_reference)
{
    const int widths[] = {1, 37, 64, 768};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        int D = widths[w], rows = 5;
        float *x = random_matrix((size_t)rows * D, 11 + (uint64_t)D);
        for (int i = 0; i < rows * D; i++) x[i] = x[i] * 3.0f + 100.0f;   /* a large mean */
        float *gamma = random_matrix((size_t)D, 12), *beta = random_matrix((size_t)D, 13);
        float *y = malloc((size_t)rows * D * sizeof(float));
        vector_layer_norm(x, rows, D, gamma, beta, 1e-6f, y);
        for (int r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (int j = 0; j < D; j++) mean += x[r * D + j];
            mean /= D;
            for (int j = 0; j < D; j++) var += (x[r * D + j] - mean) * (x[r * D + j] - mean);
            var /= D;
            for (int j = 0; j < D; j++) {
                double want = (x[r * D + j] - mean) / sqrt(var + 1e-6) * gamma[j] + beta[j];
                ck_assert_msg(fabs(y[r * D + j] - want) <= 2e-5, "D=%d: y = %.8g, want %.8g", D,
                              y[r * D + j], want);
            }
        }
        free(x), free(gamma), free(beta), free(y);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, linear_float32);
    tcase_add_test(tc, linear_bf16);
    tcase_add_test(tc, products_thread_independent);
    tcase_add_test(tc, bf16_rounding);
    tcase_add_test(tc, attention_matches_reference);
    tcase_add_test(tc, gelu_matches_erf);
    tcase_add_test(tc, layer_norm_matches_reference);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
