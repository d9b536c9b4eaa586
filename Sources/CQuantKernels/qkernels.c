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
#include <stdlib.h>

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

#ifdef QK_X86
// One row, 16 floats per step: the same arithmetic as the portable loop below (max |x|, one
// multiply by 1/scale, rounding half away from zero done exactly as trunc + (|frac| ≥ ½ ? ±1 : 0),
// clamp), so the codes and scales are bit-identical to it.
__attribute__((target("avx512f,avx512bw,avx512dq")))
static void quantize_row_avx512(const float *row, int64_t K, int8_t *qr, float *scale_out) {
    __m512 vmax = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(row + k)));
    float amax = _mm512_reduce_max_ps(vmax);
    for (; k < K; k++) { float v = fabsf(row[k]); if (v > amax) amax = v; }
    const float s = amax > 0 ? amax / 127.0f : 1.0f;
    const float inv = 1.0f / s;
    const __m512 vinv = _mm512_set1_ps(inv), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    for (k = 0; k + 16 <= K; k += 16) {
        const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(row + k), vinv);
        __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), half, _CMP_GE_OQ);
        const __m512 sgn = _mm512_or_ps(one, _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));  // copysign(1, v)
        t = _mm512_mask_add_ps(t, up, t, sgn);
        t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
        _mm_storeu_si128((__m128i *)(qr + k), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(t)));
    }
    for (; k < K; k++) {
        float v = roundf(row[k] * inv);
        if (v > 127) v = 127;
        if (v < -127) v = -127;
        qr[k] = (int8_t)v;
    }
    *scale_out = s;
}
#endif

void qk_quantize_rows_s8(int64_t M, int64_t K, const float *x, int8_t *q, float *scale) {
#ifdef QK_X86
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
        for (int64_t m = 0; m < M; m++) quantize_row_avx512(x + m * K, K, q + m * K, scale + m);
        return;
    }
#endif
    qk_quantize_rows_s8_portable(M, K, x, q, scale);
}

void qk_quantize_rows_s8_portable(int64_t M, int64_t K, const float *x, int8_t *q, float *scale) {
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

#ifdef QK_X86
// ---------------------------------------------------------------------------------------------
// AVX-512 VNNI, register-blocked: 16 output columns × up to 4 activation rows per step.
//
// The 16 weight rows of a column block are repacked (once per call and block, 16·K bytes) so
// that one 64-byte load holds 4 consecutive k of each of the 16 columns, the layout vpdpbusd
// wants. vpdpbusd multiplies unsigned by signed bytes, so activations enter as a ^ 0x80 = a + 128
// (unsigned) and 128·Σ_{k∈g} b is subtracted per group afterwards; every integer is exact
// (|Σ| ≤ K·255·128 < 2³¹ for K < 65,536), and the float epilogue is the same sequence of
// operations as the portable path (multiply, then add, per group; the row scale last), so
// the results are bit-identical to it.

enum { QK_NR = 16, QK_MR = 8 };

/// Packs B rows [n0, n0 + 16) (zero rows past n1) into bp (K/4 quads × 64 bytes) and fills the
/// per-group column sums, scales and zero points of the block (G × 16 each).
static void pack_block(const int8_t *B, const float *b_scale, const int8_t *b_zero, int64_t K, int64_t G, int64_t group,
                       int64_t n0, int64_t n1, int8_t *bp, int32_t *colsum, float *scale, int32_t *zero) {
    for (int64_t j = 0; j < QK_NR; j++) {
        const int64_t n = n0 + j;
        const int live = n < n1;
        const int8_t *row = B + n * K;
        for (int64_t q = 0; q < K / 4; q++)
            for (int t = 0; t < 4; t++) bp[q * 64 + j * 4 + t] = live ? row[4 * q + t] : 0;
        for (int64_t g = 0; g < G; g++) {
            int32_t cs = 0;
            if (live) for (int64_t k = g * group; k < (g + 1) * group; k++) cs += row[k];
            colsum[g * QK_NR + j] = cs;
            scale[g * QK_NR + j] = live ? b_scale[n * G + g] : 0;
            zero[g * QK_NR + j] = (live && b_zero) ? b_zero[n * G + g] : 0;
        }
    }
}

/// rows (1…8) activation rows, already offset to unsigned (a ^ 0x80), against one packed block;
/// out rows have stride ldc, `width` ≤ 16 columns are stored.
__attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni"), always_inline))
static inline void vnni_tile(const int rows, const int8_t *A, int64_t K, const float *a_scale, const int32_t *asum,
                             int64_t G, int64_t group, const int8_t *bp, const int32_t *colsum, const float *scale,
                             const int32_t *zero, int has_zero, float *C, int64_t ldc, int width) {
    __m512 accf[QK_MR];
    for (int r = 0; r < QK_MR; r++) accf[r] = _mm512_setzero_ps();
    for (int64_t g = 0; g < G; g++) {
        __m512i acc[QK_MR];
        for (int r = 0; r < QK_MR; r++) acc[r] = _mm512_setzero_si512();
        const int64_t k0 = g * group, k1 = k0 + group;
        for (int64_t k = k0; k < k1; k += 4) {
            const __m512i b = _mm512_loadu_si512((const void *)(bp + k * 16));
            for (int r = 0; r < rows; r++) {
                int32_t a4;
                __builtin_memcpy(&a4, A + r * K + k, 4);
                acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_set1_epi32(a4), b);
            }
        }
        const __m512i cs128 = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(colsum + g * QK_NR)), 7);
        const __m512 sc = _mm512_loadu_ps(scale + g * QK_NR);
        const __m512i zp = _mm512_loadu_si512((const void *)(zero + g * QK_NR));
        for (int r = 0; r < rows; r++) {
            __m512i d = _mm512_sub_epi32(acc[r], cs128);
            if (has_zero) d = _mm512_sub_epi32(d, _mm512_mullo_epi32(zp, _mm512_set1_epi32(asum[r * G + g])));
            accf[r] = _mm512_add_ps(accf[r], _mm512_mul_ps(sc, _mm512_cvtepi32_ps(d)));
        }
    }
    const __mmask16 mask = (__mmask16)((1u << width) - 1u);
    for (int r = 0; r < rows; r++)
        _mm512_mask_storeu_ps(C + r * ldc, mask, _mm512_mul_ps(_mm512_set1_ps(a_scale[r]), accf[r]));
}

__attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))
static void gemm_vnni_blocked(int64_t M, int64_t K, int64_t n0, int64_t n1, const int8_t *A,
                              const uint8_t *au_in, const int32_t *asum_in, const float *a_scale,
                              const int8_t *B, const float *b_scale, const int8_t *b_zero, int64_t group,
                              float *C, int64_t ldc) {
    const int64_t G = K / group;
    int8_t *bp = (int8_t *)aligned_alloc(64, (size_t)(K * QK_NR + 64));
    int32_t *colsum = (int32_t *)malloc(sizeof(int32_t) * (size_t)(G * QK_NR));
    float *scale = (float *)malloc(sizeof(float) * (size_t)(G * QK_NR));
    int32_t *zero = (int32_t *)malloc(sizeof(int32_t) * (size_t)(G * QK_NR));
    // The shared preparation, made here only when the caller did not pass it.
    int32_t *asum_own = (!asum_in && b_zero) ? (int32_t *)malloc(sizeof(int32_t) * (size_t)(M * G)) : NULL;
    uint8_t *au_own = au_in ? NULL : (uint8_t *)malloc((size_t)(M * K));
    if (!bp || !colsum || !scale || !zero || (!asum_in && b_zero && !asum_own) || (!au_in && !au_own)) {
        free(bp); free(colsum); free(scale); free(zero); free(asum_own); free(au_own);
        return;  // caller checked sizes; allocation failure leaves C untouched
    }
    if (au_own || asum_own) {
        uint8_t *u = au_own ? au_own : (uint8_t *)malloc((size_t)(M * K));
        int32_t *t = asum_own ? asum_own : (int32_t *)malloc(sizeof(int32_t) * (size_t)(M * G));
        if (u && t) qk_prepare_s8(M, K, group, A, u, t);
        if (!au_own) free(u);
        if (!asum_own) free(t);
    }
    const uint8_t *au = au_in ? au_in : au_own;
    const int32_t *asum = b_zero ? (asum_in ? asum_in : asum_own) : NULL;
    for (int64_t nb = n0; nb < n1; nb += QK_NR) {
        const int width = (int)(n1 - nb < QK_NR ? n1 - nb : QK_NR);
        pack_block(B, b_scale, b_zero, K, G, group, nb, n1, bp, colsum, scale, zero);
        int64_t m = 0;
#define QK_TILE(R) vnni_tile(R, (const int8_t *)au + m * K, K, a_scale + m, asum ? asum + m * G : NULL, G, group, bp, \
                             colsum, scale, zero, b_zero != NULL, C + m * ldc + nb, ldc, width)
        for (; m + QK_MR <= M; m += QK_MR) QK_TILE(8);
        switch (M - m) {
        case 7: QK_TILE(7); break;
        case 6: QK_TILE(6); break;
        case 5: QK_TILE(5); break;
        case 4: QK_TILE(4); break;
        case 3: QK_TILE(3); break;
        case 2: QK_TILE(2); break;
        case 1: QK_TILE(1); break;
        default: break;
        }
#undef QK_TILE
    }
    free(bp); free(colsum); free(scale); free(zero); free(asum_own); free(au_own);
}
#endif

// Output columns are processed in blocks so that a block of weight rows (NB·K bytes) stays in
// cache while every activation row passes over it.
enum { QK_NB = 32 };

void qk_prepare_s8(int64_t M, int64_t K, int64_t group, const int8_t *A, uint8_t *au, int32_t *asum) {
    const int64_t G = K / group;
    for (int64_t i = 0; i < M * K; i++) au[i] = (uint8_t)A[i] ^ 0x80u;  // a + 128 as unsigned
    for (int64_t m = 0; m < M; m++)
        for (int64_t g = 0; g < G; g++) {
            int32_t s = 0;
            for (int64_t k = g * group; k < (g + 1) * group; k++) s += A[m * K + k];
            asum[m * G + g] = s;
        }
}

void qk_gemm_s8(int isa, int64_t M, int64_t N, int64_t K, int64_t n0, int64_t n1,
                const int8_t *A, const uint8_t *au, const int32_t *pre_asum, const float *a_scale,
                const int8_t *B, const float *b_scale, const int8_t *b_zero, int64_t group,
                float *C, int64_t ldc) {
    (void)N;
#ifdef QK_X86
    if (isa == QK_ISA_AVX512VNNI && qk_isa_supported(isa) && K % 4 == 0 && group % 4 == 0 && K < 65536 && n1 > n0) {
        gemm_vnni_blocked(M, K, n0, n1, A, au, pre_asum, a_scale, B, b_scale, b_zero, group, C, ldc);
        return;
    }
#endif
    dot_fn dot = pick(isa);
    const int64_t G = K / group;            // groups per weight row
    for (int64_t nb = n0; nb < n1; nb += QK_NB) {
        const int64_t ne = nb + QK_NB < n1 ? nb + QK_NB : n1;
        for (int64_t m = 0; m < M; m++) {
            const int8_t *a = A + m * K;
            // Σ_{k∈g} A[m,k] per group, needed only for asymmetric weights.
            int32_t own[G > 0 && b_zero && !pre_asum ? G : 1];
            const int32_t *asum = pre_asum ? pre_asum + m * G : own;
            if (b_zero && !pre_asum) {
                for (int64_t g = 0; g < G; g++) {
                    int32_t s = 0;
                    for (int64_t k = g * group; k < (g + 1) * group; k++) s += a[k];
                    own[g] = s;
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
