// Issue-rate probes: how many multiply-adds per second an instruction does next to float32 FMA
// on this CPU, timed once in a few milliseconds (bf16_dot.c, int16_dot.c).
#ifndef GREENPRUNE_ISSUE_RATE_H
#define GREENPRUNE_ISSUE_RATE_H

#include <math.h>
#include <stdint.h>
#include <time.h>

// Twelve independent chains of one instruction (zmm1..zmm12 from zmm0), n times, in assembly so
// the stream is the same at every optimisation level: each runs at its issue rate, not its latency.
#define QK_TWELVE(op)                                                                              \
    op " %%zmm0, %%zmm0, %%zmm1\n\t" op " %%zmm0, %%zmm0, %%zmm2\n\t" op " %%zmm0, %%zmm0, %%zmm3\n\t"     \
    op " %%zmm0, %%zmm0, %%zmm4\n\t" op " %%zmm0, %%zmm0, %%zmm5\n\t" op " %%zmm0, %%zmm0, %%zmm6\n\t"     \
    op " %%zmm0, %%zmm0, %%zmm7\n\t" op " %%zmm0, %%zmm0, %%zmm8\n\t" op " %%zmm0, %%zmm0, %%zmm9\n\t"     \
    op " %%zmm0, %%zmm0, %%zmm10\n\t" op " %%zmm0, %%zmm0, %%zmm11\n\t" op " %%zmm0, %%zmm0, %%zmm12\n\t"
#define QK_CHAINS(op, n)                                                                            \
    __asm__ volatile("vpxord %%zmm0, %%zmm0, %%zmm0\n\t"                                           \
                     "1:\n\t" QK_TWELVE(op) "dec %0\n\t"                                          \
                     "jnz 1b\n\t"                                                                 \
                     : "+r"(n)                                                                     \
                     :                                                                             \
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
                       "xmm10", "xmm11", "xmm12", "cc")

__attribute__((target("avx512f"), noinline))
static void chains_fma(int64_t n) { QK_CHAINS("vfmadd231ps", n); }

// The same twelve chains in ymm registers, for AVX2 kernels.
#define QK_TWELVE_YMM(op)                                                                          \
    op " %%ymm0, %%ymm0, %%ymm1\n\t" op " %%ymm0, %%ymm0, %%ymm2\n\t" op " %%ymm0, %%ymm0, %%ymm3\n\t"     \
    op " %%ymm0, %%ymm0, %%ymm4\n\t" op " %%ymm0, %%ymm0, %%ymm5\n\t" op " %%ymm0, %%ymm0, %%ymm6\n\t"     \
    op " %%ymm0, %%ymm0, %%ymm7\n\t" op " %%ymm0, %%ymm0, %%ymm8\n\t" op " %%ymm0, %%ymm0, %%ymm9\n\t"     \
    op " %%ymm0, %%ymm0, %%ymm10\n\t" op " %%ymm0, %%ymm0, %%ymm11\n\t" op " %%ymm0, %%ymm0, %%ymm12\n\t"
__attribute__((target("avx2,fma"), noinline, unused))
static void chains_fma_ymm(int64_t n) {
    __asm__ volatile("vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
                     "1:\n\t" QK_TWELVE_YMM("vfmadd231ps") "dec %0\n\t"
                     "jnz 1b\n\t"
                     : "+r"(n)
                     :
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                       "xmm12", "cc");
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// (macs / t) / (fma_macs / t_fma) for `chains` (12 chains of one step doing `macs` multiply-adds,
// n times) against `fma` (12 chains of VFMADD231PS doing `fma_macs`: 16 on zmm, 8 on ymm): the
// fastest of 40 interleaved rounds of each (a few milliseconds in all), since another process
// taking the core, or a busy sibling hyperthread on the host, slows a round and never speeds one
// up. The window has to be long: with five rounds, a job running beside the probe made some
// processes read a ratio near the callers' threshold, so the kernel changed from run to run.
// 0 when a clock fails.
static inline double qk_speedup_over_fma(void (*chains)(int64_t), double macs, double fma_macs,
                                         void (*fma)(int64_t)) {
    const int64_t n = 20000;
    double best = 1e30, best_fma = 1e30;
    for (int round = 0; round < 40; round++) {
        double t = seconds();
        chains(n);
        best = fmin(best, seconds() - t);
        t = seconds();
        fma(n);
        best_fma = fmin(best_fma, seconds() - t);
    }
    if (best <= 0 || best_fma <= 0) return 0;
    return (macs / best) / (fma_macs / best_fma);
}

#endif
