// Fused blockwise attention (see gp_attention.h). One source, written with clang/gcc vector
// extensions, is compiled three times (flash_attention_body.h): AVX-512 (16 lanes, 6 × 64
// tiles), AVX2+FMA and the baseline (6 × 16 and 6 × 8 tiles), and the best the CPU has is
// picked per call. A function taking or returning a vector would change ABI between the
// versions, so every helper is a macro.
#include "gp_attention.h"
#include "vector_exp.h"
#include <stdint.h>
#include <string.h>

enum { FA_R = 6, FA_COLS = 64 };

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

// eˣ, the polynomial of vector_math.c's exp8 (Cephes expf, about 1 ulp) on any vector width.
#define FA_EXP(T, TI, xin) GPK_EXP(T, TI, xin)

#if defined(__x86_64__) && defined(__clang__)
#define FA_X86 1
#include <immintrin.h>

// The same eˣ with AVX-512's own rounding (vrndscaleps) and 2ⁿ scaling (vscalefps): four
// instructions fewer per vector. Inputs here are ≤ 0 (scores minus their running max), so only
// the lower clamp is needed.
#define FA_EXP512(xin) ({ \
    __m512 x_ = _mm512_max_ps((__m512)(xin), _mm512_set1_ps(-87.3f)); \
    __m512 n_ = _mm512_roundscale_ps(_mm512_mul_ps(x_, _mm512_set1_ps(1.44269504088896341f)), \
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); \
    x_ = _mm512_fnmadd_ps(n_, _mm512_set1_ps(0.693359375f), x_); \
    x_ = _mm512_fmadd_ps(n_, _mm512_set1_ps(2.12194440e-4f), x_); \
    __m512 z_ = _mm512_mul_ps(x_, x_); \
    __m512 p_ = _mm512_set1_ps(1.9875691500e-4f); \
    p_ = _mm512_fmadd_ps(p_, x_, _mm512_set1_ps(1.3981999507e-3f)); \
    p_ = _mm512_fmadd_ps(p_, x_, _mm512_set1_ps(8.3334519073e-3f)); \
    p_ = _mm512_fmadd_ps(p_, x_, _mm512_set1_ps(4.1665795894e-2f)); \
    p_ = _mm512_fmadd_ps(p_, x_, _mm512_set1_ps(1.6666665459e-1f)); \
    p_ = _mm512_fmadd_ps(p_, x_, _mm512_set1_ps(5.0000001201e-1f)); \
    p_ = _mm512_add_ps(_mm512_fmadd_ps(p_, z_, x_), _mm512_set1_ps(1.0f)); \
    _mm512_scalef_ps(p_, n_); })

#define FA_EXPV(x) ((fv)FA_EXP512(x))
#define FA_FN fa_avx512
#define FA_TARGET __attribute__((target("avx512f")))
#define FA_W 16
#define FA_NV 4
#include "flash_attention_body.h"
#undef FA_EXPV
#define FA_EXPV(x) FA_EXP(fv, fvi, x)
#undef FA_FN
#undef FA_TARGET
#undef FA_W
#undef FA_NV

#define FA_FN fa_avx2
#define FA_TARGET __attribute__((target("avx2,fma")))
#define FA_W 8
#define FA_NV 2
#include "flash_attention_body.h"
#undef FA_FN
#undef FA_TARGET
#undef FA_W
#undef FA_NV
#endif

#ifndef FA_EXPV
#define FA_EXPV(x) FA_EXP(fv, fvi, x)
#endif
#define FA_FN fa_baseline
#define FA_TARGET
#define FA_W 4
#define FA_NV 2
#include "flash_attention_body.h"
#undef FA_FN
#undef FA_TARGET
#undef FA_W
#undef FA_NV

long gpk_flash_attention_work(long group, long rq, long d, long key_block) {
    const long rows_pad = fa_round_up(group * rq, FA_R), kb = fa_round_up(key_block, FA_COLS);
    return 2 * rows_pad * d + d * kb + FA_R * kb + rows_pad + 16 * rows_pad;
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
