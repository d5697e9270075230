/* probe_internal.h — private to probe/: the seeded generator and sorting helpers. */
#ifndef RADDINO_PROBE_INTERNAL_H
#define RADDINO_PROBE_INTERNAL_H

#include "raddino_probe.h"

#include <stdint.h>

/* splitmix64: a small, well-mixed generator; the state is the caller's (no global). */
static inline uint64_t probe_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in 0..n-1 (n > 0; the modulo bias is below 2^-40 for the sizes used here). */
static inline uint64_t probe_below(uint64_t *state, uint64_t n)
{
    return probe_next(state) % n;
}

/* order[0..n) = the indices sorted by score, highest first (ties by index). */
raddino_status probe_order_desc(const double *score, size_t n, size_t *order);

/* AUROC and AUPRC over images in `order` (highest score first), weights optional. */
void probe_metrics_ordered(const size_t *order, size_t n, const double *score, const uint8_t *y,
                           size_t y_stride, const double *weight, double *auroc, double *auprc);

#endif
