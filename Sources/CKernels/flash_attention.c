// Fused blockwise attention (see gp_attention.h). One source, written with clang/gcc vector
// extensions, is compiled three times (flash_attention_body.h): AVX-512 (16 lanes, chunks of 48
// queries, tiles of 8 rows × 48), AVX2+FMA and the baseline (chunks of 16 and 8 queries, tiles of
// 6 keys or 4 channels × the chunk), and the best the CPU has is picked per call. A function taking or returning a vector would change ABI between the
// versions, so every helper is a macro.
#include "gp_attention.h"
#include "CQuantKernels.h"
#include "vector_exp.h"
#include <limits.h>
#include <stdint.h>
#include <string.h>

// Most queries per chunk (FA_W · FA_QV) and rows per tile over the three versions: the work size.
enum { FA_QW_MAX = 48, FA_KR_MAX = 8 };

static inline long fa_min(long a, long b) { return a < b ? a : b; }
static inline long fa_max(long a, long b) { return a > b ? a : b; }
static inline long fa_round_up(long a, long m) { return (a + m - 1) / m * m; }

#define FA_LOAD(T, p) ({ T v_; memcpy(&v_, (p), sizeof v_); v_; })
#define FA_STORE(p, v) do { __typeof__(v) s_ = (v); memcpy((p), &s_, sizeof s_); } while (0)
#define FA_SPLAT(T, a) GPK_SPLAT(T, a)
#define FA_VMAX(T, TI, a, b) GPK_VMAX(T, TI, a, b)
#if defined(__clang__)
#define FA_UNROLL _Pragma("clang loop unroll(full)")
#else
#define FA_UNROLL
#endif

// 2ˣ for x ≤ 0 on any vector width: x = n + f, n an integer (the 1.5·2²³ rounding trick), |f| ≤
// 1/2; 2^f = 1 + f·P(f), P of degree 4 fitted for least maximum relative error on [-1/2, 1/2]
// (1.04e-7 in exact arithmetic, the rounding of float32 one ulp: as close as the Cephes
// polynomial of one degree more, one FMA fewer per exponential); 2ⁿ built in the exponent bits.
// x is clamped at -126 so 2ⁿ stays a normal float (products with subnormals are slow). Scores in
// base 2 (queries scaled by log₂e) save the multiplication by log₂e and the two-part ln2
// reduction of eˣ.
#define FA_EXP2_POLY(f_) \
    (((((1.330882287e-3f * (f_) + 9.671517189e-3f) * (f_) + 5.550582467e-2f) * (f_) + 2.402224202e-1f) * (f_) \
      + 6.931470917e-1f) * (f_) + 1.0f)
#define FA_EXP2(T, TI, xin) ({ \
    T x_ = GPK_VMAX(T, TI, (xin), GPK_SPLAT(T, -126.0f)); \
    T sh_ = x_ + 12582912.0f; \
    T f_ = x_ - (sh_ - 12582912.0f); \
    TI bits_ = (((TI)sh_ - 0x4B400000) + 127) << 23; \
    FA_EXP2_POLY(f_) * (T)bits_; })

#if defined(__x86_64__) && defined(__clang__)
#define FA_X86 1
#include <immintrin.h>

// The same 2ˣ with AVX-512's own rounding (vrndscaleps) and 2ⁿ scaling (vscalefps).
#define FA_EXP2_512(xin) ({ \
    __m512 x_ = _mm512_max_ps((__m512)(xin), _mm512_set1_ps(-126.0f)); \
    __m512 n_ = _mm512_roundscale_ps(x_, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); \
    __m512 f_ = _mm512_sub_ps(x_, n_); \
    _mm512_scalef_ps(FA_EXP2_POLY(f_), n_); })

// Two rows of 16 floats as 16 bf16 pairs (a[i], b[i]), low half first: VDPBF16PS's operand
// along its sum's axis (keys for Pᵀ and V).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static inline __m512i fa_bf16_pairs(__m512 a, __m512 b) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

#define FA_EXP2V(x) ((fv)FA_EXP2_512(x))
#define FA_KV_T float
#define FA_FN fa_avx512
#define FA_TARGET __attribute__((target("avx512f")))
#define FA_W 16
#define FA_QV 3
#define FA_KR 8
#define FA_CR 8
#include "flash_attention_body.h"
#undef FA_FN
#undef FA_TARGET
#undef FA_KV_T

#define FA_BF16 1
#define FA_KV_T uint16_t
#define FA_FN fa_avx512_bf16
#define FA_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#include "flash_attention_body.h"
#undef FA_BF16
#undef FA_KV_T
#define FA_KV_T float
#undef FA_EXP2V
#define FA_EXP2V(x) FA_EXP2(fv, fvi, x)
#undef FA_FN
#undef FA_TARGET
#undef FA_W
#undef FA_QV
#undef FA_KR
#undef FA_CR

#define FA_FN fa_avx2
#define FA_TARGET __attribute__((target("avx2,fma")))
#define FA_W 8
#define FA_QV 2
#define FA_KR 6
#define FA_CR 4
#include "flash_attention_body.h"
#undef FA_FN
#undef FA_TARGET
#undef FA_W
#undef FA_QV
#undef FA_KR
#undef FA_CR
#endif

#ifndef FA_EXP2V
#define FA_EXP2V(x) FA_EXP2(fv, fvi, x)
#define FA_KV_T float
#endif
#define FA_FN fa_baseline
#define FA_TARGET
#define FA_W 4
#define FA_QV 2
#define FA_KR 6
#define FA_CR 4
#include "flash_attention_body.h"
#undef FA_FN
#undef FA_TARGET
#undef FA_W
#undef FA_QV
#undef FA_KR
#undef FA_CR

long gpk_flash_attention_work(long group, long rq, long d, long key_block) {
    (void)group, (void)rq;
    // Qᵀ and Oᵀ of one chunk, its Sᵀ for a key block, two int lanes per query, and the bf16
    // kernel's Pᵀ pairs.
    const long kb = fa_round_up(key_block, FA_KR_MAX);
    return 2 * d * FA_QW_MAX + kb * FA_QW_MAX + 2 * FA_QW_MAX + (kb / 2 + 1) * FA_QW_MAX;
}

int gpk_flash_attention_bf16_available(void) {
#ifdef FA_X86
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

#ifdef FA_X86
// gpk_pack_bf16_kv for widths that are a multiple of 16: a row of keys per conversion, and two
// rows of values interleaved per pair row (the permutation that pairs Pᵀ in the bf16 kernel).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static void fa_pack_avx512_bf16(uint16_t *k16, uint16_t *vpairs, const float *k, const float *v, long rows, long width,
                                long stride) {
    for (long j = 0; j < rows; j++)
        for (long c = 0; c < width; c += 16)
            _mm256_storeu_si256((__m256i *)(k16 + j * width + c), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(k + j * stride + c)));
    for (long j = 0; j < rows; j += 2)
        for (long c = 0; c < width; c += 16) {
            const __m512 v0 = _mm512_loadu_ps(v + j * stride + c);
            const __m512 v1 = j + 1 < rows ? _mm512_loadu_ps(v + (j + 1) * stride + c) : _mm512_setzero_ps();
            _mm512_storeu_si512(vpairs + j * width + 2 * c, fa_bf16_pairs(v0, v1));
        }
}
#endif

void gpk_pack_bf16_kv(uint16_t *k16, uint16_t *vpairs, const float *k, const float *v, long rows, long width,
                      long stride) {
#ifdef FA_X86
    if (width % 16 == 0 && gpk_flash_attention_bf16_available()) {
        fa_pack_avx512_bf16(k16, vpairs, k, v, rows, width, stride);
        return;
    }
#endif
    for (long j = 0; j < rows; j++) {
        const float *kr = k + j * stride, *vr = v + j * stride;
        uint16_t *kd = k16 + j * width, *vd = vpairs + j / 2 * 2 * width + (j & 1);
        for (long c = 0; c < width; c++) {
            kd[c] = qk_bf16_round(kr[c]);
            vd[2 * c] = qk_bf16_round(vr[c]);
        }
    }
    if (rows & 1) {
        uint16_t *vd = vpairs + rows / 2 * 2 * width + 1;
        for (long c = 0; c < width; c++) vd[2 * c] = 0;
    }
}

int gpk_flash_attention_bf16(float *out, const float *q, long q_stride, long group, long rq, long d,
                             const uint16_t *k16, const uint16_t *vpairs, long kv_stride, long valid, long first,
                             int causal, const int *row_seg, const int *key_seg, float scale, long key_block,
                             float *work) {
#ifdef FA_X86
    if (d > 0 && d % 16 == 0 && gpk_flash_attention_bf16_available()) {
        fa_avx512_bf16(out, q, q_stride, group, rq, d, k16, vpairs, kv_stride, valid, first, causal, row_seg, key_seg,
                       scale, key_block, work);
        return 0;
    }
#endif
    (void)out, (void)q, (void)q_stride, (void)group, (void)rq, (void)d, (void)k16, (void)vpairs, (void)kv_stride;
    (void)valid, (void)first, (void)causal, (void)row_seg, (void)key_seg, (void)scale, (void)key_block, (void)work;
    return -1;
}

int gpk_flash_attention(float *out, const float *q, long q_stride, long group, long rq, long d,
                        const float *k, const float *v, long kv_stride, long valid, long first, int causal,
                        const int *row_seg, const int *key_seg, float scale, long key_block,
                        float *work, int isa) {
#ifdef FA_X86
    if (isa == GPK_ATTN_BEST) isa = GPK_ATTN_AVX512;
    if (isa >= GPK_ATTN_AVX512 && __builtin_cpu_supports("avx512f")) {
        fa_avx512(out, q, q_stride, group, rq, d, k, v, kv_stride, valid, first, causal, row_seg, key_seg,
                  scale, key_block, work);
        return GPK_ATTN_AVX512;
    }
    if (isa >= GPK_ATTN_AVX2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        fa_avx2(out, q, q_stride, group, rq, d, k, v, kv_stride, valid, first, causal, row_seg, key_seg,
                scale, key_block, work);
        return GPK_ATTN_AVX2;
    }
#endif
    (void)isa;
    fa_baseline(out, q, q_stride, group, rq, d, k, v, kv_stride, valid, first, causal, row_seg, key_seg,
                scale, key_block, work);
    return GPK_ATTN_BASELINE;
}
