// Int8 GEMM kernels: a portable path and two x86 SIMD paths chosen at run time.
//
// Both SIMD paths multiply an unsigned byte by a signed byte (the only form x86 offers):
// u = |b| and s = a·sign(b), so u·s = a·b. |b| ≤ 128 fits u8 (|−128| = 0x80), and a ∈ [−127, 127]
// makes a·sign(b) safe from the −128 negation overflow. With AVX2, vpmaddubsw adds two products
// into int16: 2·128·127 = 32512 < 32767, so it never saturates; vpmaddwd then widens to int32.
// VNNI's vpdpbusd adds four products straight into int32 accumulators.
#include "CQuantKernels.h"

#include <math.h>
#include <stddef.h>

#if defined(__x86_64__) || defined(__i386__)
#define QK_X86 1
#include <immintrin.h>
#endif

// ---------------------------------------------------------------------------------------------
// Portable path

static int32_t dot_portable(const int8_t *a, const int8_t *b, int64_t len) {
    int32_t s = 0;
    for (int64_t k = 0; k < len; k++) s += (int32_t)a[k] * (int32_t)b[k];
    return s;
}

#ifdef QK_X86
// ---------------------------------------------------------------------------------------------
// AVX2: 32 pairs per step.

__attribute__((target("avx2")))
static inline int32_t hsum_epi32_avx2(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

__attribute__((target("avx2")))
static int32_t dot_avx2(const int8_t *a, const int8_t *b, int64_t len) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    int64_t k = 0;
    for (; k + 32 <= len; k += 32) {
        __m256i va = _mm256_loadu_si256((const __m256i *)(a + k));
        __m256i vb = _mm256_loadu_si256((const __m256i *)(b + k));
        __m256i u = _mm256_abs_epi8(vb);            // |b| as unsigned bytes
        __m256i s = _mm256_sign_epi8(va, vb);       // a·sign(b) (0 where b = 0)
        __m256i p16 = _mm256_maddubs_epi16(u, s);   // pairs → int16, no saturation (see top)
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p16, ones));
    }
    int32_t sum = hsum_epi32_avx2(acc);
    for (; k < len; k++) sum += (int32_t)a[k] * (int32_t)b[k];
    return sum;
}

// ---------------------------------------------------------------------------------------------
// AVX-512 VNNI (256-bit registers through AVX-512 VL): 32 pairs per vpdpbusd.

__attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))
static int32_t dot_vnni(const int8_t *a, const int8_t *b, int64_t len) {
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    int64_t k = 0;
    for (; k + 64 <= len; k += 64) {
        __m256i va0 = _mm256_loadu_si256((const __m256i *)(a + k));
        __m256i vb0 = _mm256_loadu_si256((const __m256i *)(b + k));
        __m256i va1 = _mm256_loadu_si256((const __m256i *)(a + k + 32));
        __m256i vb1 = _mm256_loadu_si256((const __m256i *)(b + k + 32));
        acc0 = _mm256_dpbusd_epi32(acc0, _mm256_abs_epi8(vb0), _mm256_sign_epi8(va0, vb0));
        acc1 = _mm256_dpbusd_epi32(acc1, _mm256_abs_epi8(vb1), _mm256_sign_epi8(va1, vb1));
    }
    for (; k + 32 <= len; k += 32) {
        __m256i va = _mm256_loadu_si256((const __m256i *)(a + k));
        __m256i vb = _mm256_loadu_si256((const __m256i *)(b + k));
        acc0 = _mm256_dpbusd_epi32(acc0, _mm256_abs_epi8(vb), _mm256_sign_epi8(va, vb));
    }
    int32_t sum = hsum_epi32_avx2(_mm256_add_epi32(acc0, acc1));
    for (; k < len; k++) sum += (int32_t)a[k] * (int32_t)b[k];
    return sum;
}
#endif

// ---------------------------------------------------------------------------------------------
// Dispatch

int qk_isa_supported(int isa) {
    switch (isa) {
    case QK_ISA_PORTABLE: return 1;
#ifdef QK_X86
    case QK_ISA_AVX2: return __builtin_cpu_supports("avx2") ? 1 : 0;
    case QK_ISA_AVX512VNNI:
        return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")) ? 1 : 0;
#endif
    default: return 0;
    }
}

int qk_best_isa(void) {
    static int best = -1;
    if (best < 0) {
        best = qk_isa_supported(QK_ISA_AVX512VNNI) ? QK_ISA_AVX512VNNI
             : qk_isa_supported(QK_ISA_AVX2) ? QK_ISA_AVX2 : QK_ISA_PORTABLE;
    }
    return best;
}

typedef int32_t (*dot_fn)(const int8_t *, const int8_t *, int64_t);

static dot_fn pick(int isa) {
#ifdef QK_X86
    if (isa == QK_ISA_AVX512VNNI && qk_isa_supported(isa)) return dot_vnni;
    if (isa == QK_ISA_AVX2 && qk_isa_supported(isa)) return dot_avx2;
#endif
    (void)isa;
    return dot_portable;
}

int32_t qk_dot_s8(int isa, const int8_t *a, const int8_t *b, int64_t len) {
    return pick(isa)(a, b, len);
}

void qk_quantize_rows_s8(int64_t M, int64_t K, const float *x, int8_t *q, float *scale) {
    for (int64_t m = 0; m < M; m++) {
        const float *row = x + m * K;
        float amax = 0;
        for (int64_t k = 0; k < K; k++) { float v = fabsf(row[k]); if (v > amax) amax = v; }
        float s = amax > 0 ? amax / 127.0f : 1.0f;
        float inv = 1.0f / s;
        int8_t *qr = q + m * K;
        for (int64_t k = 0; k < K; k++) {
            float v = roundf(row[k] * inv);          // half away from zero
            if (v > 127) v = 127;
            if (v < -127) v = -127;
            qr[k] = (int8_t)v;
        }
        scale[m] = s;
    }
}

// Output columns are processed in blocks so that a block of weight rows (NB·K bytes) stays in
// cache while every activation row passes over it.
enum { QK_NB = 32 };

void qk_gemm_s8(int isa, int64_t M, int64_t N, int64_t K, int64_t n0, int64_t n1,
                const int8_t *A, const float *a_scale,
                const int8_t *B, const float *b_scale, const int8_t *b_zero, int64_t group,
                float *C, int64_t ldc) {
    (void)N;
    dot_fn dot = pick(isa);
    const int64_t G = K / group;            // groups per weight row
    for (int64_t nb = n0; nb < n1; nb += QK_NB) {
        const int64_t ne = nb + QK_NB < n1 ? nb + QK_NB : n1;
        for (int64_t m = 0; m < M; m++) {
            const int8_t *a = A + m * K;
            // Σ_{k∈g} A[m,k] per group, needed only for asymmetric weights.
            int32_t asum[G > 0 && b_zero ? G : 1];
            if (b_zero) {
                for (int64_t g = 0; g < G; g++) {
                    int32_t s = 0;
                    for (int64_t k = g * group; k < (g + 1) * group; k++) s += a[k];
                    asum[g] = s;
                }
            }
            for (int64_t n = nb; n < ne; n++) {
                const int8_t *b = B + n * K;
                const float *bs = b_scale + n * G;
                float acc = 0;
                for (int64_t g = 0; g < G; g++) {
                    int32_t d = dot(a + g * group, b + g * group, group);
                    if (b_zero) d -= (int32_t)b_zero[n * G + g] * asum[g];
                    acc += bs[g] * (float)d;
                }
                C[m * ldc + n] = a_scale[m] * acc;
            }
        }
    }
}
