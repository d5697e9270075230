/* synthetic.h — the clustered synthetic 768-d vectors of the index benchmarks, made again from
 * an id alone (so a benchmark never stores its gigabytes of data: any vector, a shortlist to
 * re-rank or a whole chunk, is regenerated on demand).
 *
 * 1,000 random centres (Gaussian, norm about 1); vector i = centre (chosen by i) + Gaussian
 * noise of twice the centre's norm. Real embeddings are clustered (by view, body part,
 * scanner); the heavy noise makes the neighbours within a cluster hard to tell apart, which is
 * what costs an IVF recall. The same generator as bench_scale.c (same seeds, same vectors).
 * Header-only: each benchmark is one program. */
#ifndef RADDINO_BENCH_SYNTHETIC_H
#define RADDINO_BENCH_SYNTHETIC_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define SYNTH_CENTRES 1000

static uint64_t synth_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t synth_next(uint64_t *s) { return synth_mix(*s += 0x632be59bd9b4e019ull); }

static float synth_gauss(uint64_t *s)
{
    double u = ((synth_next(s) >> 11) + 0.5) * 0x1.0p-53;
    double v = ((synth_next(s) >> 11) + 0.5) * 0x1.0p-53;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

typedef struct {
    int d;
    float *centres;
} synth_generator;

static int synth_make(synth_generator *g, int d)
{
    g->d = d;
    g->centres = malloc((size_t)SYNTH_CENTRES * d * sizeof *g->centres);
    if (!g->centres) return 1;
    uint64_t s = 12345;
    for (size_t i = 0; i < (size_t)SYNTH_CENTRES * d; i++)
        g->centres[i] = synth_gauss(&s) / sqrtf((float)d);
    return 0;
}

/* Vector `id` (ids from 1). */
static void synth_vector(const synth_generator *g, int64_t id, float *out)
{
    uint64_t s = synth_mix((uint64_t)id * 0x2545f4914f6cdd1dull);
    const float *c = g->centres + (synth_next(&s) % SYNTH_CENTRES) * (size_t)g->d;
    float scale = 2.0f / sqrtf((float)g->d);
    for (int j = 0; j < g->d; j++) out[j] = c[j] + scale * synth_gauss(&s);
}

static void synth_vectors(const synth_generator *g, int64_t first_id, size_t n, float *out)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        synth_vector(g, first_id + (int64_t)i, out + i * (size_t)g->d);
}

/* raddino_index_fetch_fn: the float32 vectors of a shortlist, as the store would give them. */
static int synth_fetch(void *user, const int64_t *ids, size_t n, float *vectors)
{
    const synth_generator *g = user;
    for (size_t i = 0; i < n; i++) synth_vector(g, ids[i], vectors + i * (size_t)g->d);
    return 0;
}

#endif
