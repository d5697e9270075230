/* peak.c — the arithmetic peak the encoder's kernels are rated against, measured in the same run
 * on the same OpenMP threads: a register-only loop of vdpbf16ps (bf16) or vfmadd231ps (fp32) on
 * zmm registers, 24 independent accumulator chains (more than latency x throughput on any
 * AVX-512 core we know: Zen 4/5 and Intel need 8 to 12), no memory operand, no other
 * instruction in the loop but the counter. The loop is written in inline assembly so that the
 * compiler can neither fold it away nor add loads or spills to it.
 *
 * FLOPs counted: vdpbf16ps zmm = 16 lanes x 2 products x (multiply + add) = 64;
 * vfmadd231ps zmm = 16 lanes x (multiply + add) = 32. The same convention as the forward pass's
 * count (2 per multiply-add of every product).
 */
#include "peak.h"

#include <omp.h>
#include <stdint.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define ACC24(OP)                                                                             \
    OP " %%zmm30, %%zmm31, %%zmm0\n\t" OP " %%zmm30, %%zmm31, %%zmm1\n\t"                       \
    OP " %%zmm30, %%zmm31, %%zmm2\n\t" OP " %%zmm30, %%zmm31, %%zmm3\n\t"                       \
    OP " %%zmm30, %%zmm31, %%zmm4\n\t" OP " %%zmm30, %%zmm31, %%zmm5\n\t"                       \
    OP " %%zmm30, %%zmm31, %%zmm6\n\t" OP " %%zmm30, %%zmm31, %%zmm7\n\t"                       \
    OP " %%zmm30, %%zmm31, %%zmm8\n\t" OP " %%zmm30, %%zmm31, %%zmm9\n\t"                       \
    OP " %%zmm30, %%zmm31, %%zmm10\n\t" OP " %%zmm30, %%zmm31, %%zmm11\n\t"                     \
    OP " %%zmm30, %%zmm31, %%zmm12\n\t" OP " %%zmm30, %%zmm31, %%zmm13\n\t"                     \
    OP " %%zmm30, %%zmm31, %%zmm14\n\t" OP " %%zmm30, %%zmm31, %%zmm15\n\t"                     \
    OP " %%zmm30, %%zmm31, %%zmm16\n\t" OP " %%zmm30, %%zmm31, %%zmm17\n\t"                     \
    OP " %%zmm30, %%zmm31, %%zmm18\n\t" OP " %%zmm30, %%zmm31, %%zmm19\n\t"                     \
    OP " %%zmm30, %%zmm31, %%zmm20\n\t" OP " %%zmm30, %%zmm31, %%zmm21\n\t"                     \
    OP " %%zmm30, %%zmm31, %%zmm22\n\t" OP " %%zmm30, %%zmm31, %%zmm23\n\t"

#define CLOBBER24                                                                             \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",     \
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19",        \
        "xmm20", "xmm21", "xmm22", "xmm23", "xmm30", "xmm31"

/* 24 x iterations instructions of one kind; zmm30/31 hold small finite operands (zeroed by the
 * vpxord, so the sums never overflow or turn denormal). */
__attribute__((target("avx512f,avx512bf16"))) static void loop_bf16(uint64_t iterations)
{
    __asm__ volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n\t"
                     "vpxord %%zmm31, %%zmm31, %%zmm31\n\t"
                     "1:\n\t" ACC24("vdpbf16ps") "dec %0\n\t"
                     "jnz 1b\n\t"
                     : "+r"(iterations)
                     :
                     : "cc", CLOBBER24);
}

__attribute__((target("avx512f"))) static void loop_fma(uint64_t iterations)
{
    __asm__ volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n\t"
                     "vpxord %%zmm31, %%zmm31, %%zmm31\n\t"
                     "1:\n\t" ACC24("vfmadd231ps") "dec %0\n\t"
                     "jnz 1b\n\t"
                     : "+r"(iterations)
                     :
                     : "cc", CLOBBER24);
}
#endif

/* GFLOP/s of `threads` threads each running the loop for about `seconds`: the iteration count
 * is calibrated once, then every thread runs the same count and the wall time of the whole
 * parallel region is what counts (a slow core slows the total, as it would the encoder). */
double peak_gflops(peak_kind kind, int threads, double seconds)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (kind == PEAK_BF16 && !(__builtin_cpu_supports("avx512f") &&
                               __builtin_cpu_supports("avx512bf16")))
        return 0;
    if (!__builtin_cpu_supports("avx512f")) return 0;
    double flops_per_iteration = 24.0 * (kind == PEAK_BF16 ? 64 : 32);
    uint64_t n = 1u << 16;
    for (;;) {   /* calibrate on one thread: long enough to time */
        double start = now();
        if (kind == PEAK_BF16) loop_bf16(n);
        else loop_fma(n);
        double s = now() - start;
        if (s > 0.02) {
            n = (uint64_t)((double)n * seconds / s) + 1;
            break;
        }
        n *= 2;
    }
    double best = 0;
    for (int round = 0; round < 3; round++) {   /* best of three: the peak is a bound */
        double start = now();
        #pragma omp parallel num_threads(threads)
        {
            if (kind == PEAK_BF16) loop_bf16(n);
            else loop_fma(n);
        }
        double s = now() - start;
        double g = (double)threads * (double)n * flops_per_iteration / s * 1e-9;
        if (g > best) best = g;
    }
    return best;
#else
    (void)kind, (void)threads, (void)seconds;
    return 0;
#endif
}
