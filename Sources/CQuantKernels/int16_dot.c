// Float activations × weight-only quantized weights on integer dot products, for CPUs without
// AMX on which float32 sgemm is the rival: AVX-512 VNNI (VPDPWSSD), or AVX2 (VPMADDWD + VPADDD)
// where there is no VNNI. Both compute the same exact int32 sums and flush them in the same order,
// so they give the portable loop's results bit for bit.
//
// The activations are quantized per row to int16 (symmetric, scale max|x| / 32767: a relative
// step of 2⁻¹⁵ of the row's largest value, finer than bf16's 2⁻⁸ of each value's own), the
// weights are expanded from their codes to the exact integers q − z, and VPDPWSSD adds, in each
// of 16 int32 lanes, the two products of a pair of int16 activations (broadcast) with the pair of
// one output column's weights: 32 multiply-adds per instruction against FMA's 16, issued at
// FMA's rate on the CPUs this is for. On AVX2, VPMADDWD forms the same pair sums in 8 lanes (16
// multiply-adds) and VPADDD adds them up: CPUs that issue two VPMADDWD per cycle next to two
// FMAs (AMD Zen 3) do half again as many multiply-adds as float32 FMA. The int32 sums are exact; they are flushed to float32
// (× the weight's group scale, one FMA) at every group boundary and at least every
// `flush_length(bits)` values of k, and the row scale multiplies the float sum at the end.
//
// Overflow bound of the int32 lanes: |a| ≤ 32767 and |q − z| ≤ 255 (8-bit codes and zero points
// both in [−128, 127]) or ≤ 15 (4-bit: stored nibble u ∈ [0, 15], q − z = u − 8 − z with
// z ∈ [−8, 7]), so L products sum to at most 32767·255·L (8-bit), below 2³¹ − 1 for L ≤ 256, or
// 32767·15·L (4-bit), below 2³¹ − 1 for L ≤ 4369. Flushing every 256 (8-bit) or 4096 (4-bit)
// values of k keeps every partial sum, and so every lane, exact.
//
// Layouts (shared with the Swift caller, see CQuantKernels.h):
// - A: (Mp, Kp) int16 row-major, Mp = M rounded up to 8, Kp = K rounded up to 32, padding zero;
//   row_scale (Mp) float, 0 on padding rows.
// - B: (Np/16) column blocks, block j = (Kp/2) pairs × 16 columns × 2: B[j·16·Kp + 32p + 2c + e] =
//   q − z of W[16j + c][2p + e] (zero past N or K), Np = N rounded up to 32: the layout of the
//   bf16 dot-product kernel and of AMX's B tiles, in int16.
// - S: (Np/16) blocks of (G, 16) floats: S[(j·G + g)·16 + c] = scale of W[16j + c] in group g
//   (zero past N), G groups per row.
#include "CQuantKernels.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#define QK_X86 1
#include <immintrin.h>

#include "issue_rate.h"
#include "transpose16.h"
#endif

static inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

#ifdef QK_X86
// Asks for the `rows` rows of `bytes` bytes at c (row stride ldc floats) a chunk before the
// kernel adds its results to them: with `accumulate`, C (the residual stream) is long out of
// cache, and loading it only at the store stalled the end of every block.
static inline void prefetch_rows(const float *c, int64_t ldc, int64_t rows, int64_t bytes) {
    for (int64_t r = 0; r < rows; r++) {
        const char *row = (const char *)(c + r * ldc);
        for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(row + o, _MM_HINT_T0);
        _mm_prefetch(row + bytes - 1, _MM_HINT_T0); // the row may straddle one more line
    }
}
#endif

static int has_vnni(void) {
#ifdef QK_X86
    static int state = -1;
    if (state < 0)
        state = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    return state;
#else
    return 0;
#endif
}

static int has_avx2(void) {
#ifdef QK_X86
    static int state = -1;
    if (state < 0) state = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return state;
#else
    return 0;
#endif
}

int qk_int16_dot_isa(void) { return has_vnni() ? QK_ISA_AVX512VNNI : has_avx2() ? QK_ISA_AVX2 : 0; }

int qk_int16_dot_available(void) { return qk_int16_dot_isa() != 0; }

int qk_int16_dot_known_fast(void) {
#ifdef QK_X86
    if (has_vnni()) return 1;
    return has_avx2() && (__builtin_cpu_is("amdfam17h") || __builtin_cpu_is("amdfam19h") || __builtin_cpu_is("amdfam1ah"));
#else
    return 0;
#endif
}

// Whether `isa` (QK_ISA_PORTABLE, QK_ISA_AVX2 or QK_ISA_AVX512VNNI) can run here.
static int isa_runs(int isa) {
    return isa == QK_ISA_PORTABLE || (isa == QK_ISA_AVX2 && has_avx2()) || (isa == QK_ISA_AVX512VNNI && has_vnni());
}

// Most values of k whose products one int32 lane sums before a flush (see the bound above).
static inline int64_t flush_length(int bits) { return bits == 4 ? 4096 : 256; }

// The group of the flush segment starting at k0 (the last group also covers the padding to Kp).
static inline int64_t segment_group(int64_t k0, int64_t gpr, int64_t group) { return min64(k0 / group, gpr - 1); }

// End of the flush segment starting at k0: the group's end or k0 + L, whichever comes first.
// Both are even (group is even when gpr > 1, Kp and L are), so segments hold whole pairs.
static inline int64_t segment_end(int64_t k0, int64_t Kp, int64_t gpr, int64_t group, int64_t L) {
    const int64_t g = segment_group(k0, gpr, group);
    const int64_t e = g == gpr - 1 ? Kp : (g + 1) * group;
    return min64(e, k0 + L);
}

#ifdef QK_X86
// One row of x to int16 by AVX-512, the same values as the scalar loop below: |x| maximum and a
// finiteness test in one pass, then x · inv rounded by VCVTPS2DQ (to nearest, ties to even, as
// lrintf in the default rounding mode) and clamped. False when the row holds inf or NaN.
__attribute__((target("avx512f,avx512bw,avx512vl")))
static int quantize_row_avx512(const float *r, int64_t K, int16_t *o, float *scale) {
    const __m512 big = _mm512_set1_ps(FLT_MAX);
    __m512 mx = _mm512_setzero_ps();
    __mmask16 bad = 0;
    int64_t k = 0;
    for (; k < K; k += 16) {
        const __mmask16 m = K - k >= 16 ? 0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        const __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(m, r + k));
        bad |= _mm512_mask_cmp_ps_mask(m, v, big, _CMP_NLE_UQ);
        mx = _mm512_max_ps(mx, v);
    }
    if (bad) return 0;
    const float top = _mm512_reduce_max_ps(mx);
    *scale = 0;
    if (top < FLT_MIN) return 1;
    const __m512 inv = _mm512_set1_ps(32767.0f / top);
    const __m512i hi = _mm512_set1_epi32(32767), lo = _mm512_set1_epi32(-32767);
    for (k = 0; k < K; k += 16) {
        const __mmask16 m = K - k >= 16 ? 0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, r + k), inv));
        q = _mm512_max_epi32(_mm512_min_epi32(q, hi), lo);
        _mm256_mask_storeu_epi16(o + k, m, _mm512_cvtepi32_epi16(q));
    }
    *scale = top / 32767.0f;
    return 1;
}

// The same on AVX2: 16 values per step (two VCVTPS2DQ, saturated to int16 by VPACKSSDW, whose
// lane interleave VPERMQ undoes), the tail in scalar code with the same arithmetic.
__attribute__((target("avx2,fma")))
static int quantize_row_avx2(const float *r, int64_t K, int16_t *o, float *scale) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), big = _mm256_set1_ps(FLT_MAX);
    __m256 mx = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        const __m256 v = _mm256_and_ps(_mm256_loadu_ps(r + k), absmask);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(v, big, _CMP_NLE_UQ));
        mx = _mm256_max_ps(mx, v);
    }
    if (_mm256_movemask_ps(bad)) return 0;
    float lanes[8];
    _mm256_storeu_ps(lanes, mx);
    float top = 0;
    for (int i = 0; i < 8; i++) top = lanes[i] > top ? lanes[i] : top;
    for (; k < K; k++) {
        const float v = fabsf(r[k]);
        if (!(v <= FLT_MAX)) return 0;
        top = v > top ? v : top;
    }
    *scale = 0;
    if (top < FLT_MIN) return 1;
    const float inv1 = 32767.0f / top;
    const __m256 inv = _mm256_set1_ps(inv1);
    const __m256i hi = _mm256_set1_epi32(32767), lo = _mm256_set1_epi32(-32767);
    for (k = 0; k + 16 <= K; k += 16) {
        __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(r + k), inv));
        __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(r + k + 8), inv));
        q0 = _mm256_max_epi32(_mm256_min_epi32(q0, hi), lo);
        q1 = _mm256_max_epi32(_mm256_min_epi32(q1, hi), lo);
        _mm256_storeu_si256((__m256i *)(o + k), _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8));
    }
    for (; k < K; k++) {
        long q = lrintf(r[k] * inv1);
        q = q > 32767 ? 32767 : q < -32767 ? -32767 : q;
        o[k] = (int16_t)q;
    }
    *scale = top / 32767.0f;
    return 1;
}
#endif

// One row of x to int16 in plain C: the values the vector passes above must give. False when the
// row holds inf or NaN (o untouched); a row whose largest value is subnormal contributes products
// below 2⁻¹²⁶ and stays zero with scale 0.
static int quantize_row_portable(const float *r, int64_t K, int16_t *o, float *scale) {
    float mx = 0;
    int finite = 1;
    for (int64_t k = 0; k < K; k++) {
        const float v = fabsf(r[k]);
        finite &= v <= FLT_MAX;
        mx = v > mx ? v : mx;
    }
    if (!finite) return 0;
    *scale = 0;
    if (mx < FLT_MIN) return 1;
    const float inv = 32767.0f / mx;
    for (int64_t k = 0; k < K; k++) {
        long q = lrintf(r[k] * inv);
        q = q > 32767 ? 32767 : q < -32767 ? -32767 : q;
        o[k] = (int16_t)q;
    }
    *scale = mx / 32767.0f;
    return 1;
}

int qk_int16_pack_a_isa(int isa, int64_t m0, int64_t m1, int64_t M, int64_t K, const float *x, int64_t ldx, int16_t *a,
                        float *row_scale) {
    if (!isa_runs(isa)) return -1;
    const int64_t Kp = round_up(K, 32);
    for (int64_t m = m0; m < m1; m++) {
        int16_t *o = a + m * Kp;
        memset(o, 0, (size_t)Kp * sizeof(int16_t));
        row_scale[m] = 0;
        if (m >= M) continue;
        const float *r = x + m * ldx;
        int finite;
        switch (isa) {
#ifdef QK_X86
        case QK_ISA_AVX512VNNI: finite = quantize_row_avx512(r, K, o, row_scale + m); break;
        case QK_ISA_AVX2: finite = quantize_row_avx2(r, K, o, row_scale + m); break;
#endif
        default: finite = quantize_row_portable(r, K, o, row_scale + m); break;
        }
        // A row holding inf or NaN gives NaN in every output of that row.
        if (!finite) {
            memset(o, 0, (size_t)Kp * sizeof(int16_t));
            row_scale[m] = NAN;
        }
    }
    return 0;
}

void qk_int16_pack_a(int64_t m0, int64_t m1, int64_t M, int64_t K, const float *x, int64_t ldx, int16_t *a,
                     float *row_scale) {
    (void)qk_int16_pack_a_isa(qk_int16_dot_isa(), m0, m1, M, K, x, ldx, a, row_scale);
}

void qk_int16_pack_a_portable(int64_t m0, int64_t m1, int64_t M, int64_t K, const float *x, int64_t ldx, int16_t *a,
                              float *row_scale) {
    (void)qk_int16_pack_a_isa(QK_ISA_PORTABLE, m0, m1, M, K, x, ldx, a, row_scale);
}

// q − z of value k of row `r` (bits 4: nibble k, eight per little-endian uint32; bits 8: int8).
static inline int16_t weight_value(int bits, const uint8_t *r, int64_t k, int z) {
    if (bits == 4) {
        uint32_t w;
        memcpy(&w, r + 4 * (k / 8), 4);
        return (int16_t)((int)((w >> (4 * (k % 8))) & 0xF) - 8 - z);
    }
    return (int16_t)((int)((const int8_t *)r)[k] - z);
}

#ifdef QK_X86
// K a multiple of 32, group a multiple of 16: 16 rows of 32 values expanded to int16 in zmm
// registers, then the 16×16 transpose of their pairs into the block.
__attribute__((target("avx512f,avx512bw")))
static void pack_q_avx512(int64_t rows, int64_t K, int bits, const uint8_t *data, int64_t row_bytes, const int8_t *zero,
                          int64_t gpr, int64_t group, int16_t *b) {
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (int64_t t = 0; t < K / 32; t++) {
        const int64_t k0 = 32 * t;
        __m512i v[16];
        for (int64_t r = 0; r < 16; r++) {
            if (r >= rows) { v[r] = _mm512_setzero_si512(); continue; }
            const int64_t g0 = r * gpr + k0 / group, g1 = r * gpr + (k0 + 16) / group;
            const int base = bits == 4 ? 8 : 0;
            const int o0 = base + (zero ? zero[g0] : 0), o1 = base + (zero ? zero[g1] : 0);
            __m512i w;
            if (bits == 4) {
                // Byte i holds value 2i in its low nibble and 2i+1 in its high nibble.
                const __m128i x = _mm_loadu_si128((const __m128i *)(data + r * row_bytes + k0 / 2));
                const __m128i ln = _mm_and_si128(x, low4), hn = _mm_and_si128(_mm_srli_epi16(x, 4), low4);
                const __m256i bytes = _mm256_set_m128i(_mm_unpackhi_epi8(ln, hn), _mm_unpacklo_epi8(ln, hn));
                w = _mm512_cvtepu8_epi16(bytes);
            } else {
                w = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(data + r * row_bytes + k0)));
            }
            const __m512i off = _mm512_inserti64x4(_mm512_set1_epi16((short)o0), _mm256_set1_epi16((short)o1), 1);
            v[r] = _mm512_sub_epi16(w, off);
        }
        transpose16_store(v, (uint32_t *)(b + t * 512));
    }
}
#endif

#ifdef QK_X86
// pack_q_avx512 on AVX2: each row's 32 values as two ymm of 8 pairs, then four 8×8 transposes
// (rows 0–7 and 8–15, pairs 0–7 and 8–15) into the block.
__attribute__((target("avx2")))
static void pack_q_avx2(int64_t rows, int64_t K, int bits, const uint8_t *data, int64_t row_bytes, const int8_t *zero,
                        int64_t gpr, int64_t group, int16_t *b) {
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (int64_t t = 0; t < K / 32; t++) {
        const int64_t k0 = 32 * t;
        __m256i lo[16], hi[16];
        for (int64_t r = 0; r < 16; r++) {
            if (r >= rows) { lo[r] = hi[r] = _mm256_setzero_si256(); continue; }
            const int64_t g0 = r * gpr + k0 / group, g1 = r * gpr + (k0 + 16) / group;
            const int base = bits == 4 ? 8 : 0;
            const int o0 = base + (zero ? zero[g0] : 0), o1 = base + (zero ? zero[g1] : 0);
            __m256i w0, w1;
            if (bits == 4) {
                // Byte i holds value 2i in its low nibble and 2i+1 in its high nibble.
                const __m128i x = _mm_loadu_si128((const __m128i *)(data + r * row_bytes + k0 / 2));
                const __m128i ln = _mm_and_si128(x, low4), hn = _mm_and_si128(_mm_srli_epi16(x, 4), low4);
                w0 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(ln, hn));
                w1 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(ln, hn));
            } else {
                const uint8_t *p = data + r * row_bytes + k0;
                w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
                w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 16)));
            }
            lo[r] = _mm256_sub_epi16(w0, _mm256_set1_epi16((short)o0));
            hi[r] = _mm256_sub_epi16(w1, _mm256_set1_epi16((short)o1));
        }
        uint32_t *tile = (uint32_t *)(b + t * 512);
        transpose8_store(lo, tile);
        transpose8_store(lo + 8, tile + 8);
        transpose8_store(hi, tile + 16 * 8);
        transpose8_store(hi + 8, tile + 16 * 8 + 8);
    }
}
#endif

int qk_int16_pack_q_isa(int isa, int64_t rows, int64_t K, int bits, const void *data, int64_t row_bytes,
                        const float *scale, const int8_t *zero, int64_t gpr, int64_t group, int16_t *b, float *s) {
    if (!isa_runs(isa) || (bits != 4 && bits != 8) || rows < 0 || rows > 16 || K <= 0 || group <= 0 ||
        K % group != 0 || gpr != K / group || (gpr > 1 && group % 2 != 0))
        return -1;
    const int64_t Kp = round_up(K, 32), P = Kp / 2;
    const uint8_t *d = (const uint8_t *)data;
    for (int64_t c = 0; c < 16; c++)
        for (int64_t g = 0; g < gpr; g++) s[g * 16 + c] = c < rows ? scale[c * gpr + g] : 0;
#ifdef QK_X86
    if (K % 32 == 0 && group % 16 == 0 && isa == QK_ISA_AVX512VNNI) {
        pack_q_avx512(rows, K, bits, d, row_bytes, zero, gpr, group, b);
        return 0;
    }
    if (K % 32 == 0 && group % 16 == 0 && isa == QK_ISA_AVX2) {
        pack_q_avx2(rows, K, bits, d, row_bytes, zero, gpr, group, b);
        return 0;
    }
#endif
    for (int64_t c = 0; c < 16; c++) {
        const uint8_t *r = d + c * row_bytes;
        for (int64_t k = 0; k < 2 * P; k++) {
            const int z = c < rows && zero ? zero[c * gpr + min64(k / group, gpr - 1)] : 0;
            b[32 * (k / 2) + 2 * c + (k % 2)] = c < rows && k < K ? weight_value(bits, r, k, z) : 0;
        }
    }
    return 0;
}

int qk_int16_pack_q(int64_t rows, int64_t K, int bits, const void *data, int64_t row_bytes, const float *scale,
                    const int8_t *zero, int64_t gpr, int64_t group, int16_t *b, float *s) {
    return qk_int16_pack_q_isa(qk_int16_dot_isa(), rows, K, bits, data, row_bytes, scale, zero, gpr, group, b, s);
}

static int valid_gemm(int64_t M, int64_t N, int64_t K, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int bits,
                      int64_t gpr, int64_t group) {
    return (bits == 4 || bits == 8) && M > 0 && N > 0 && K > 0 && m0 >= 0 && m0 % 8 == 0 && m1 <= M && n0 >= 0 &&
           n0 % 32 == 0 && n1 <= N && group > 0 && gpr == K / group && K % group == 0 && (gpr == 1 || group % 2 == 0);
}

// The portable loop: the arithmetic the vector kernels reproduce, value by value.
static void gemm_portable(int64_t K, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int bits, const int16_t *a,
                          const float *row_scale, const int16_t *b, const float *s, int64_t gpr, int64_t group,
                          int accumulate, float *c, int64_t ldc) {
    const int64_t Kp = round_up(K, 32), L = flush_length(bits);
    for (int64_t i = m0; i < m1; i++) {
        const int16_t *ar = a + i * Kp;
        for (int64_t n = n0; n < n1; n++) {
            const int16_t *bb = b + (n / 16) * 16 * Kp;
            const float *sb = s + (n / 16) * gpr * 16;
            const int64_t col = n % 16;
            float f = 0;
            for (int64_t k0 = 0; k0 < Kp;) {
                const int64_t g = segment_group(k0, gpr, group), k1 = segment_end(k0, Kp, gpr, group, L);
                int32_t sum = 0;
                for (int64_t k = k0; k < k1; k++) sum += (int32_t)ar[k] * (int32_t)bb[32 * (k / 2) + 2 * col + (k % 2)];
                f = fmaf((float)sum, sb[g * 16 + col], f);
                k0 = k1;
            }
            const float v = f * row_scale[i];
            float *o = c + i * ldc + n;
            *o = accumulate ? *o + v : v;
        }
    }
}

#ifdef QK_X86
// acc + VPDPWSSD(a, b), in assembly: clang (21) otherwise splits the intrinsic into VPMADDWD +
// VPADDD when tuning for Intel cores, two instructions where one does the work, which halves
// the kernel's peak.
__attribute__((target("avx512f,avx512vnni")))
static inline __m512i dpwssd(__m512i acc, __m512i a, __m512i b) {
    __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

// Rows i..i+8 of A (present: A is padded to 8 rows) times the 32 columns of the block pair at
// b0 (scales at s0), over the whole flush segments in [k0, k1). The float sums start from `f`
// (8×32 floats; zero when `first`) and go back there, or, when `last`, are multiplied by the
// row scales and stored in `rows` rows and `cols` columns of C (added to C with `accumulate`).
// Each segment sums into 16 int32 accumulators, then one FMA per accumulator moves it into the
// float sums, which the compiler keeps outside the segment's loop.
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void kernel_8x32(int64_t rows, int64_t cols, const int16_t *a, int64_t Kp, int64_t k0, int64_t k1,
                        const int16_t *b0, const float *s0, int64_t gpr, int64_t group, int64_t L, float *state,
                        int first, int last, const float *rs, int accumulate, float *c, int64_t ldc) {
    const int64_t P = Kp / 2;
    const int16_t *b1 = b0 + 16 * Kp;
    const float *s1 = s0 + 16 * gpr;
    const int32_t *a32 = (const int32_t *)a;
    if (last && accumulate) prefetch_rows(c, ldc, rows, 128);
    __m512 f[8][2];
    for (int r = 0; r < 8; r++) {
        f[r][0] = first ? _mm512_setzero_ps() : _mm512_load_ps(state + 32 * r);
        f[r][1] = first ? _mm512_setzero_ps() : _mm512_load_ps(state + 32 * r + 16);
    }
    for (int64_t e0 = k0; e0 < k1;) {
        const int64_t g = segment_group(e0, gpr, group), e1 = segment_end(e0, Kp, gpr, group, L);
        __m512i acc[8][2];
        for (int r = 0; r < 8; r++) { acc[r][0] = _mm512_setzero_si512(); acc[r][1] = _mm512_setzero_si512(); }
        for (int64_t p = e0 / 2; p < e1 / 2; p++) {
            const __m512i v0 = _mm512_loadu_si512((const void *)(b0 + 32 * p));
            const __m512i v1 = _mm512_loadu_si512((const void *)(b1 + 32 * p));
            for (int r = 0; r < 8; r++) {
                const __m512i x = _mm512_set1_epi32(a32[r * P + p]);
                acc[r][0] = dpwssd(acc[r][0], x, v0);
                acc[r][1] = dpwssd(acc[r][1], x, v1);
            }
        }
        const __m512 sv0 = _mm512_loadu_ps(s0 + 16 * g), sv1 = _mm512_loadu_ps(s1 + 16 * g);
        for (int r = 0; r < 8; r++) {
            f[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][0]), sv0, f[r][0]);
            f[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][1]), sv1, f[r][1]);
        }
        e0 = e1;
    }
    if (!last) {
        for (int r = 0; r < 8; r++) { _mm512_store_ps(state + 32 * r, f[r][0]); _mm512_store_ps(state + 32 * r + 16, f[r][1]); }
        return;
    }
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    for (int64_t r = 0; r < rows; r++) {
        float *o = c + r * ldc;
        const __m512 sr = _mm512_set1_ps(rs[r]);
        __m512 v0 = _mm512_mul_ps(f[r][0], sr), v1 = _mm512_mul_ps(f[r][1], sr);
        if (accumulate) {
            v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, o), v0);
            v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, o + 16), v1);
        }
        _mm512_mask_storeu_ps(o, m0, v0);
        _mm512_mask_storeu_ps(o + 16, m1, v1);
    }
}
#endif

// Rows handled per pass over a chunk of k: their float sums wait in a stack buffer between chunks.
#define QK_INT16_ROW_BLOCK 256
// Values of k per chunk (at least; a chunk ends on a flush segment's end): 32 columns of B over
// a chunk (16 KB) stay in L1 while every 8-row block of the pass reads them.
#define QK_INT16_K_CHUNK 256

#ifdef QK_X86
// 8-row blocks of 32 columns on AVX-512 VNNI.
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void gemm_avx512(int64_t K, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int bits, const int16_t *a,
                        const float *row_scale, const int16_t *b, const float *s, int64_t gpr, int64_t group,
                        int accumulate, float *c, int64_t ldc) {
    const int64_t Kp = round_up(K, 32), L = flush_length(bits);
    float state[QK_INT16_ROW_BLOCK / 8][8 * 32] __attribute__((aligned(64)));
    for (int64_t i0 = m0; i0 < m1; i0 += QK_INT16_ROW_BLOCK) {
        const int64_t i1 = min64(i0 + QK_INT16_ROW_BLOCK, m1);
        for (int64_t j = n0; j < n1; j += 32) {
            const int16_t *bj = b + (j / 16) * 16 * Kp;
            const float *sj = s + (j / 16) * gpr * 16;
            const int64_t cols = min64(n1 - j, 32);
            for (int64_t k0 = 0; k0 < Kp;) {
                // The chunk: whole segments from k0 until at least QK_INT16_K_CHUNK values.
                int64_t k1 = k0;
                while (k1 < Kp && k1 - k0 < QK_INT16_K_CHUNK) k1 = segment_end(k1, Kp, gpr, group, L);
                for (int64_t i = i0; i < i1; i += 8)
                    kernel_8x32(min64(i1 - i, 8), cols, a + i * Kp, Kp, k0, k1, bj, sj, gpr, group, L, state[(i - i0) / 8],
                                k0 == 0, k1 == Kp, row_scale + i, accumulate, c + i * ldc + j, ldc);
                k0 = k1;
            }
        }
    }
}

// Rows of the AVX2 kernel's register block: 6 rows × 16 columns take 12 int32 accumulators, the
// block's two vectors and the broadcast activation pair, and leave one register for the products.
#define QK_AVX2_ROWS 6

// R rows of A (row r's pairs at ap[r]; rows past `rows` repeat a present row, computed and not
// stored) times the 16 columns of the block at b0 (scales at s0), over the chunk's flush segments
// (`nseg` of them from k0: ends and groups listed), on AVX2: VPMADDWD forms each pair's two
// products and their sum (exact: at most 2·32767·255 in magnitude), VPADDD adds it to one of 2R
// int32 accumulators. The float sums (R×16) live in `state` (zeroed when `first`), one FMA per
// accumulator and segment, since the accumulators fill the registers; when `last` they are
// multiplied by the row scales and stored in `rows` rows and `cols` columns of C (added to C with
// `accumulate`).
__attribute__((target("avx2,fma"), always_inline))
static inline void kernel_avx2(const int R, int64_t rows, int64_t cols, const int32_t *const *ap, int64_t k0, int nseg,
                               const int64_t *seg_end, const int64_t *seg_group, const int16_t *b0, const float *s0,
                               float *state, int first, int last, const float *rs, int accumulate, float *c, int64_t ldc) {
    if (first)
        for (int i = 0; i < 16 * R; i += 8) _mm256_store_ps(state + i, _mm256_setzero_ps());
    if (last && accumulate) prefetch_rows(c, ldc, rows, 64);
    int64_t e0 = k0;
    for (int q = 0; q < nseg; q++) {
        const int64_t g = seg_group[q], e1 = seg_end[q];
        __m256i acc[QK_AVX2_ROWS][2];
        for (int r = 0; r < R; r++) { acc[r][0] = _mm256_setzero_si256(); acc[r][1] = _mm256_setzero_si256(); }
        for (int64_t p = e0 / 2; p < e1 / 2; p++) {
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)(b0 + 32 * p));
            const __m256i v1 = _mm256_loadu_si256((const __m256i *)(b0 + 32 * p + 16));
            for (int r = 0; r < R; r++) {
                const __m256i x = _mm256_set1_epi32(ap[r][p]);
                acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(x, v0));
                acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(x, v1));
            }
        }
        const __m256 sv0 = _mm256_loadu_ps(s0 + 16 * g), sv1 = _mm256_loadu_ps(s0 + 16 * g + 8);
        for (int r = 0; r < R; r++) {
            float *f = state + 16 * r;
            _mm256_store_ps(f, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][0]), sv0, _mm256_load_ps(f)));
            _mm256_store_ps(f + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][1]), sv1, _mm256_load_ps(f + 8)));
        }
        e0 = e1;
    }
    if (!last) return;
    for (int64_t r = 0; r < rows; r++) {
        float *o = c + r * ldc;
        const __m256 sr = _mm256_set1_ps(rs[r]);
        __m256 v0 = _mm256_mul_ps(_mm256_load_ps(state + 16 * r), sr), v1 = _mm256_mul_ps(_mm256_load_ps(state + 16 * r + 8), sr);
        if (cols == 16) {
            if (accumulate) { v0 = _mm256_add_ps(_mm256_loadu_ps(o), v0); v1 = _mm256_add_ps(_mm256_loadu_ps(o + 8), v1); }
            _mm256_storeu_ps(o, v0);
            _mm256_storeu_ps(o + 8, v1);
        } else {
            float t[16];
            _mm256_storeu_ps(t, v0);
            _mm256_storeu_ps(t + 8, v1);
            for (int64_t j = 0; j < cols; j++) o[j] = accumulate ? o[j] + t[j] : t[j];
        }
    }
}

__attribute__((target("avx2,fma"), noinline))
static void kernel_avx2_block(int64_t rows, int64_t cols, const int32_t *const *ap, int64_t k0, int nseg,
                              const int64_t *seg_end, const int64_t *seg_group, const int16_t *b0, const float *s0,
                              float *state, int first, int last, const float *rs, int accumulate, float *c, int64_t ldc) {
    kernel_avx2(QK_AVX2_ROWS, rows, cols, ap, k0, nseg, seg_end, seg_group, b0, s0, state, first, last, rs, accumulate, c, ldc);
}

// Blocks of QK_AVX2_ROWS rows and 16 columns on AVX2, in the passes of gemm_avx512.
__attribute__((target("avx2,fma")))
static void gemm_avx2(int64_t K, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int bits, const int16_t *a,
                      const float *row_scale, const int16_t *b, const float *s, int64_t gpr, int64_t group,
                      int accumulate, float *c, int64_t ldc) {
    const int64_t Kp = round_up(K, 32), L = flush_length(bits), R = QK_AVX2_ROWS;
    float state[(QK_INT16_ROW_BLOCK + QK_AVX2_ROWS - 1) / QK_AVX2_ROWS][QK_AVX2_ROWS * 16] __attribute__((aligned(32)));
    for (int64_t i0 = m0; i0 < m1; i0 += QK_INT16_ROW_BLOCK) {
        const int64_t i1 = min64(i0 + QK_INT16_ROW_BLOCK, m1);
        for (int64_t j = n0; j < n1; j += 16) {
            const int16_t *bj = b + (j / 16) * 16 * Kp;
            const float *sj = s + (j / 16) * gpr * 16;
            const int64_t cols = min64(n1 - j, 16);
            for (int64_t k0 = 0; k0 < Kp;) {
                // The chunk's segments, listed once for all its row blocks (each at least 2 values
                // long: at most QK_INT16_K_CHUNK / 2 + 1 of them).
                int64_t seg_end[QK_INT16_K_CHUNK / 2 + 1], seg_group[QK_INT16_K_CHUNK / 2 + 1], k1 = k0;
                int nseg = 0;
                while (k1 < Kp && k1 - k0 < QK_INT16_K_CHUNK) {
                    seg_group[nseg] = segment_group(k1, gpr, group);
                    k1 = seg_end[nseg++] = segment_end(k1, Kp, gpr, group, L);
                }
                for (int64_t i = i0; i < i1; i += R) {
                    const int64_t rows = min64(i1 - i, R);
                    const int32_t *ap[QK_AVX2_ROWS];
                    for (int64_t r = 0; r < R; r++) ap[r] = (const int32_t *)(a + (i + min64(r, rows - 1)) * Kp);
                    kernel_avx2_block(rows, cols, ap, k0, nseg, seg_end, seg_group, bj, sj, state[(i - i0) / R], k0 == 0,
                                      k1 == Kp, row_scale + i, accumulate, c + i * ldc + j, ldc);
                }
                k0 = k1;
            }
        }
    }
}
#endif

int qk_int16_gemm_isa(int isa, int64_t M, int64_t N, int64_t K, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                      int bits, const int16_t *a, const float *row_scale, const int16_t *b, const float *s, int64_t gpr,
                      int64_t group, int accumulate, float *c, int64_t ldc) {
    if (!isa_runs(isa) || !valid_gemm(M, N, K, m0, m1, n0, n1, bits, gpr, group)) return -1;
    switch (isa) {
#ifdef QK_X86
    case QK_ISA_AVX512VNNI: gemm_avx512(K, m0, m1, n0, n1, bits, a, row_scale, b, s, gpr, group, accumulate, c, ldc); break;
    case QK_ISA_AVX2: gemm_avx2(K, m0, m1, n0, n1, bits, a, row_scale, b, s, gpr, group, accumulate, c, ldc); break;
#endif
    default: gemm_portable(K, m0, m1, n0, n1, bits, a, row_scale, b, s, gpr, group, accumulate, c, ldc); break;
    }
    return 0;
}

int qk_int16_gemm(int64_t M, int64_t N, int64_t K, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int bits,
                  const int16_t *a, const float *row_scale, const int16_t *b, const float *s, int64_t gpr, int64_t group,
                  int accumulate, float *c, int64_t ldc) {
    const int isa = qk_int16_dot_isa();
    if (isa == QK_ISA_PORTABLE) return -1;
    return qk_int16_gemm_isa(isa, M, N, K, m0, m1, n0, n1, bits, a, row_scale, b, s, gpr, group, accumulate, c, ldc);
}

int qk_int16_gemm_portable(int64_t M, int64_t N, int64_t K, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int bits,
                           const int16_t *a, const float *row_scale, const int16_t *b, const float *s, int64_t gpr,
                           int64_t group, int accumulate, float *c, int64_t ldc) {
    return qk_int16_gemm_isa(QK_ISA_PORTABLE, M, N, K, m0, m1, n0, n1, bits, a, row_scale, b, s, gpr, group,
                             accumulate, c, ldc);
}

#ifdef QK_X86
__attribute__((target("avx512f,avx512vnni"), noinline))
static void chains_dpwssd(int64_t n) { QK_CHAINS("vpdpwssd", n); }

// Twelve chains of the AVX2 kernel's step, VPMADDWD into a scratch register then VPADDD into the
// chain (three scratch registers in turn), against twelve chains of VFMADD231PS ymm.
#define QK_PAIR(acc, tmp) "vpmaddwd %%ymm0, %%ymm0, %%ymm" tmp "\n\tvpaddd %%ymm" tmp ", %%ymm" acc ", %%ymm" acc "\n\t"
__attribute__((target("avx2"), noinline))
static void chains_madd_add(int64_t n) {
    __asm__ volatile("vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
                     "1:\n\t" QK_PAIR("1", "13") QK_PAIR("2", "14") QK_PAIR("3", "15") QK_PAIR("4", "13")
                     QK_PAIR("5", "14") QK_PAIR("6", "15") QK_PAIR("7", "13") QK_PAIR("8", "14") QK_PAIR("9", "15")
                     QK_PAIR("10", "13") QK_PAIR("11", "14") QK_PAIR("12", "15") "dec %0\n\t"
                     "jnz 1b\n\t"
                     : "+r"(n)
                     :
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                       "xmm12", "xmm13", "xmm14", "xmm15", "cc");
}
#endif

double qk_int16_dot_speedup(void) {
#ifdef QK_X86
    switch (qk_int16_dot_isa()) {
    // VPDPWSSD does 32 multiply-adds per instruction (16 lanes × a pair), VFMADD zmm 16.
    case QK_ISA_AVX512VNNI: return qk_speedup_over_fma(chains_dpwssd, 32, 16, chains_fma);
    // VPMADDWD + VPADDD do 16 (8 lanes × a pair), VFMADD ymm 8.
    case QK_ISA_AVX2: return qk_speedup_over_fma(chains_madd_add, 16, 8, chains_fma_ymm);
    default: return 0;
    }
#else
    return 0;
#endif
}
