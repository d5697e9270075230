/* peak.h — the measured arithmetic peak of this CPU (peak.c), for the benches' ratios. */
#ifndef RADDINO_BENCH_PEAK_H
#define RADDINO_BENCH_PEAK_H

typedef enum { PEAK_BF16, PEAK_FP32 } peak_kind;

/* GFLOP/s of a register-only loop of vdpbf16ps (PEAK_BF16) or vfmadd231ps zmm (PEAK_FP32) on
 * `threads` OpenMP threads, each running about `seconds`, best of three; 0 when the CPU lacks
 * the instruction. */
double peak_gflops(peak_kind kind, int threads, double seconds);

#endif
