/* scan.c — exact top-k for a batch of queries in one pass over the stored vectors
 * (raddino_index_search_batch, raddino_index.h).
 *
 * Why our own loop rather than FAISS's search: FAISS 1.7.3 scans a flat index once per query
 * below 20 queries (distance_compute_blas_threshold, a process-wide global we do not change) and
 * through sgemm from 20 on, and sgemm's sums round differently from the one-query path: a query's
 * scores would then depend on how many others shared its call. Here every block of stored
 * vectors is read from memory once for the whole batch (the cost of a search on 100,000 vectors
 * is reading 300 MB), and every score is one call of score_block, whatever the batch: a query
 * gets the same ids and scores alone or among others, bit for bit. The same function re-scores
 * the shortlist of a quantised index (fp16, SQ8 codes) from the stored float32 vectors, so such
 * an index returns flat's scores bit for bit wherever its shortlist holds the true neighbours. */
#include "index_internal.h"
#include "scan_internal.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Stored vectors scored per step: 64 x 768 floats = 192 KiB stay in L2 while every query of
 * the group is scored against them. */
#define SCAN_BLOCK 64
/* Candidates held per thread (heaps of all queries in a group): bounds memory whatever k. */
#define SCAN_MAX_CANDIDATES (1u << 20)
/* Below this many stored vectors one thread scans (a team costs more than it saves). */
#define SCAN_MIN_PARALLEL 8192

typedef struct {
    float score;
    int64_t id;
} cand;

/* The result order: higher score first, then smaller id (a total order, so the top k is the
 * same set whichever thread saw which vectors). */
static int better(cand a, cand b)
{
    return a.score > b.score || (a.score == b.score && a.id < b.id);
}

static int compare_cand(const void *a, const void *b)
{
    cand x = *(const cand *)a, y = *(const cand *)b;
    return better(x, y) ? -1 : better(y, x) ? 1 : 0;
}

/* A heap of at most cap candidates whose root is the worst kept. */
static void heap_offer(cand *h, size_t *size, size_t cap, cand c)
{
    size_t i;
    if (*size < cap) {
        i = (*size)++;
        while (i > 0 && better(h[(i - 1) / 2], c)) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = c;
        return;
    }
    if (cap == 0 || !better(c, h[0])) return;
    i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        cand worst = c;
        if (l < cap && better(worst, h[l])) w = l, worst = h[l];
        if (r < cap && better(worst, h[r])) w = r;
        if (w == i) break;
        h[i] = h[w];
        i = w;
    }
    h[i] = c;
}

/* Inner products of q with nb vectors of x (rows of d floats). The one place scores are
 * computed: 16 lane sums in a fixed order, then a fixed tree; not inlined, so that every caller
 * runs the same instructions. One clone is chosen per machine when the library loads, and
 * every score of the process comes from it; the AVX-512 one fuses the multiply-adds (FMA), so
 * scores may differ between machines in the last bits, never between calls. */
__attribute__((noinline, target_clones("avx512f", "avx2", "default"))) static void
score_block(const float *q, const float *x, size_t nb, int d, float *out)
{
    for (size_t j = 0; j < nb; j++) {
        const float *v = x + j * (size_t)d;
        float acc[16] = {0};
        int i = 0;
        for (; i + 16 <= d; i += 16)
            for (int l = 0; l < 16; l++) acc[l] += q[i + l] * v[i + l];
        float tail = 0;
        for (; i < d; i++) tail += q[i] * v[i];
        for (int w = 8; w > 0; w /= 2)
            for (int l = 0; l < w; l++) acc[l] += acc[l + w];
        out[j] = acc[0] + tail;
    }
}

/* ---- Decoding codes to floats (only for the shortlist: its exact scores come later) ------- */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        float f = ldexpf((float)man, -24);     /* zero or subnormal: exact */
        return sign ? -f : f;
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

__attribute__((target("avx,f16c"))) static void f16_block_f16c(const uint16_t *c, size_t m,
                                                                float *out)
{
    size_t i = 0;
    for (; i + 8 <= m; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(c + i))));
    for (; i < m; i++) out[i] = half_to_float(c[i]);
}

static void decode_block(const index_scan_view *v, int has_f16c, size_t first, size_t nb,
                         float *out)
{
    size_t d = (size_t)v->dim;
    const uint8_t *c = v->codes + first * v->code_size;
    if (v->kind == SCAN_F16) {
        if (has_f16c) {
            f16_block_f16c((const uint16_t *)(const void *)c, nb * d, out);
        } else {
            for (size_t i = 0; i < nb * d; i++) {
                uint16_t h;
                memcpy(&h, c + 2 * i, 2);
                out[i] = half_to_float(h);
            }
        }
        return;
    }
    for (size_t j = 0; j < nb; j++)     /* SQ8: FAISS's QT_8bit reconstruction */
        for (size_t i = 0; i < d; i++)
            out[j * d + i] =
                v->vmin[i] + ((float)c[j * d + i] + 0.5f) / 255.0f * v->vdiff[i];
}

/* ---- The scan ------------------------------------------------------------------------------ */

/* Top kk of the g normalised queries q (g x d) over the view's vectors: out_s/out_i g x kk,
 * best first, padded with -INFINITY / -1. */
static raddino_status scan(const index_scan_view *v, int n_threads, const float *q, size_t g,
                           size_t kk, float *out_s, int64_t *out_i)
{
    int d = v->dim;
    int threads = v->n < SCAN_MIN_PARALLEL ? 1 : n_threads;
    size_t per = g * kk;
    cand *heaps = malloc((size_t)threads * (per ? per : 1) * sizeof *heaps);
    size_t *sizes = calloc((size_t)threads * g, sizeof *sizes);
    if (!heaps || !sizes) {
        free(heaps);
        free(sizes);
        return index_error(RADDINO_ERR_NOMEM, "out of memory searching");
    }
    size_t nblocks = (v->n + SCAN_BLOCK - 1) / SCAN_BLOCK;
    int has_f16c = v->kind == SCAN_F16 && __builtin_cpu_supports("f16c");
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        size_t b0 = nblocks * (size_t)t / (size_t)nt, b1 = nblocks * (size_t)(t + 1) / (size_t)nt;
        cand *h = heaps + (size_t)t * per;
        size_t *sz = sizes + (size_t)t * g;
        float *buf = v->kind == SCAN_F32 ? NULL : malloc(SCAN_BLOCK * (size_t)d * sizeof *buf);
        float s[SCAN_BLOCK];
        if (v->kind != SCAN_F32 && !buf) {
#pragma omp atomic write
            failed = 1;
            b1 = b0;
        }
        for (size_t b = b0; b < b1; b++) {
            size_t first = b * SCAN_BLOCK, nb = v->n - first < SCAN_BLOCK ? v->n - first
                                                                          : SCAN_BLOCK;
            const float *x;
            if (v->kind == SCAN_F32) {
                x = (const float *)(const void *)(v->codes + first * v->code_size);
            } else {
                decode_block(v, has_f16c, first, nb, buf);
                x = buf;
            }
            for (size_t qi = 0; qi < g; qi++) {
                score_block(q + qi * (size_t)d, x, nb, d, s);
                for (size_t j = 0; j < nb; j++)
                    heap_offer(h + qi * kk, &sz[qi], kk, (cand){s[j], v->ids[first + j]});
            }
        }
        free(buf);
    }
    raddino_status st = failed ? index_error(RADDINO_ERR_NOMEM, "out of memory searching")
                               : index_ok();
    /* Merge the threads' heaps query by query (the first thread's heap is the scratch). */
    cand *all = st.code ? NULL : malloc((size_t)threads * (kk ? kk : 1) * sizeof *all);
    if (!st.code && !all) st = index_error(RADDINO_ERR_NOMEM, "out of memory searching");
    for (size_t qi = 0; qi < g && !st.code; qi++) {
        size_t m = 0;
        for (int t = 0; t < threads; t++) {
            memcpy(all + m, heaps + (size_t)t * per + qi * kk, sizes[(size_t)t * g + qi] * sizeof *all);
            m += sizes[(size_t)t * g + qi];
        }
        qsort(all, m, sizeof *all, compare_cand);
        for (size_t j = 0; j < kk; j++) {
            out_s[qi * kk + j] = j < m ? all[j].score : -INFINITY;
            out_i[qi * kk + j] = j < m ? all[j].id : -1;
        }
    }
    free(all);
    free(heaps);
    free(sizes);
    return st;
}

/* Re-scores query q's shortlist (ss/si, kk long) with the stored vectors and keeps the best k. */
static raddino_status rerank_one(int d, const float *q, const float *ss, const int64_t *si,
                                 size_t kk, int k, raddino_index_fetch_fn fetch, void *user,
                                 float *v, float *exact, cand *c, size_t query, float *out_s,
                                 int64_t *out_i)
{
    (void)ss;
    size_t m = 0;
    while (m < kk && si[m] >= 0) m++;
    raddino_status st = index_ok();
    if (m > 0 && fetch(user, si, m, v) != 0)
        return index_error(RADDINO_ERR_IO,
                           "re-ranking: the stored vectors of the shortlist cannot be read");
    if (m > 0) st = index_normalise(v, m, d, v, query);
    if (st.code) return st;
    score_block(q, v, m, d, exact);
    for (size_t j = 0; j < m; j++) c[j] = (cand){exact[j], si[j]};
    qsort(c, m, sizeof *c, compare_cand);
    for (int j = 0; j < k; j++) {
        out_s[j] = (size_t)j < m ? c[j].score : -INFINITY;
        out_i[j] = (size_t)j < m ? c[j].id : -1;
    }
    return st;
}

const char *index_exact_sq_factory(const char *type)
{
    if (!type) return NULL;
    if (!strcmp(type, "exact-fp16")) return "SQfp16";
    if (!strcmp(type, "exact-sq8")) return "SQ8";
    return NULL;
}

raddino_status raddino_index_search_batch(const raddino_index *index, const float *queries,
                                          size_t nq, int k, int factor,
                                          raddino_index_fetch_fn fetch, void *user,
                                          float *scores, int64_t *ids)
{
    if (!index || k <= 0 || factor < 0 || (nq > 0 && (!queries || !scores || !ids)))
        return index_error(RADDINO_ERR_ARGUMENT, "index search: bad arguments");
    if (nq == 0) return index_ok();
    if (factor == 0) factor = index->rerank > 0 ? index->rerank : 1;
    if (!fetch) factor = 1;
    if ((size_t)k * (size_t)factor > (1u << 20))
        return index_error(RADDINO_ERR_ARGUMENT, "index search: shortlist of %d x %d too long",
                           k, factor);
    size_t kk = (size_t)k * (size_t)factor;
    int d = index->dim;
    index_scan_view view;
    int scannable = index_scan_describe(index->faiss, &view) && view.dim == d;
    size_t g = scannable ? SCAN_MAX_CANDIDATES / kk : nq;
    if (g < 1) g = 1;
    if (g > nq) g = nq;
    float *q = malloc(g * (size_t)d * sizeof *q);
    float *ss = malloc(g * kk * sizeof *ss);
    int64_t *si = malloc(g * kk * sizeof *si);
    float *v = factor > 1 ? malloc(kk * (size_t)d * sizeof *v) : NULL;
    float *exact = factor > 1 ? malloc(kk * sizeof *exact) : NULL;
    cand *c = factor > 1 ? malloc(kk * sizeof *c) : NULL;
    raddino_status st = index_ok();
    if (!q || !ss || !si || (factor > 1 && (!v || !exact || !c)))
        st = index_error(RADDINO_ERR_NOMEM, "out of memory searching");
    for (size_t i0 = 0; i0 < nq && !st.code; i0 += g) {
        size_t m = nq - i0 < g ? nq - i0 : g;
        const float *qi = queries + i0 * (size_t)d;
        st = index_normalise(qi, m, d, q, i0);
        if (st.code) break;
        if (scannable)
            st = scan(&view, index->n_threads, q, m, kk, ss, si);
        else
            st = raddino_index_search(index, qi, m, (int)kk, ss, si);
        for (size_t j = 0; j < m && !st.code; j++) {
            float *os = scores + (i0 + j) * (size_t)k;
            int64_t *oi = ids + (i0 + j) * (size_t)k;
            if (factor > 1) {
                st = rerank_one(d, q + j * (size_t)d, ss + j * kk, si + j * kk, kk, k, fetch,
                                user, v, exact, c, i0 + j, os, oi);
            } else {
                memcpy(os, ss + j * kk, (size_t)k * sizeof *os);
                memcpy(oi, si + j * kk, (size_t)k * sizeof *oi);
            }
        }
    }
    free(q);
    free(ss);
    free(si);
    free(v);
    free(exact);
    free(c);
    return st;
}
