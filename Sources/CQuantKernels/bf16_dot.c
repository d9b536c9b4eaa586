// bf16 × bf16 products with float32 accumulation on AVX-512 BF16 (VDPBF16PS), for weights kept
// in bfloat16 (HalfLinear) multiplied by float activations rounded to bf16 once per call.
//
// VDPBF16PS adds, in each of 16 float32 lanes, the two products of a pair of bf16 values of one
// operand with the pair in the same lane of the other. Broadcasting one pair of an activation row
// (A[i][2p], A[i][2p+1]) against a "VNNI" block of B (16 columns, each holding the pair of weights
// W[j][2p], W[j][2p+1]) gives 16 outputs' share of k = 2p, 2p+1 in one instruction.
//
// Layouts (shared with the Swift caller, see CQuantKernels.h):
// - A: qk_amx_pack_a's, (Mp, Kp) bf16 row-major, Mp a multiple of 32, Kp = K rounded up to 32.
// - B: (Np/16) column blocks, block j = (Kp/2) pairs × 16 columns × 2: B[j·16·Kp + 32p + 2c + e] =
//   W[16j + c][2p + e] (zero past N or K), Np = N rounded up to 32. This is the AMX B layout too.
#include "CQuantKernels.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#define QK_X86 1
#include <immintrin.h>

#include "issue_rate.h"
#endif

static inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

int qk_avx512_bf16_available(void) {
#ifdef QK_X86
    static int state = -1;
    if (state < 0) state = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
    return state;
#else
    return 0;
#endif
}

void qk_bf16_pack_b(int64_t j0, int64_t j1, int64_t N, int64_t K, const uint16_t *w, int64_t ldw, uint16_t *b) {
    const int64_t Kp = round_up(K, 32), P = Kp / 2;
    for (int64_t j = j0; j < j1; j++) {
        uint32_t *dst = (uint32_t *)(b + j * 16 * Kp);
        for (int64_t c = 0; c < 16; c++) {
            const int64_t row = 16 * j + c;
            if (row >= N) {
                for (int64_t p = 0; p < P; p++) dst[p * 16 + c] = 0;
                continue;
            }
            const uint16_t *r = w + row * ldw;
            int64_t p = 0;
            for (; 2 * p + 1 < K; p++) {
                uint32_t pair;
                memcpy(&pair, r + 2 * p, 4);
                dst[p * 16 + c] = pair;
            }
            if (2 * p < K) { dst[p * 16 + c] = r[2 * p]; p++; }
            for (; p < P; p++) dst[p * 16 + c] = 0;
        }
    }
}

#ifdef QK_X86
// Rows i..i+8 of A (all present: A is padded) times the 32 columns of blocks b0, b1; stores
// `rows` rows and `cols` columns of C, column j multiplied by scale[j] when scale is non-NULL
// (adding to what is there with `accumulate`).
__attribute__((target("avx512f,avx512bf16,avx512vl")))
static void kernel_8x32(int64_t rows, int64_t cols, const uint16_t *a, int64_t P, const uint16_t *b0, const uint16_t *b1,
                        const float *scale, float *c, int64_t ldc, int accumulate) {
    __m512 acc[8][2];
    for (int r = 0; r < 8; r++) { acc[r][0] = _mm512_setzero_ps(); acc[r][1] = _mm512_setzero_ps(); }
    const uint32_t *a32 = (const uint32_t *)a;
    for (int64_t p = 0; p < P; p++) {
        const __m512bh v0 = (__m512bh)_mm512_loadu_si512((const void *)(b0 + 32 * p));
        const __m512bh v1 = (__m512bh)_mm512_loadu_si512((const void *)(b1 + 32 * p));
        for (int r = 0; r < 8; r++) {
            const __m512bh x = (__m512bh)_mm512_set1_epi32((int)a32[r * P + p]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, v0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, v1);
        }
    }
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    const __m512 f0 = scale ? _mm512_maskz_loadu_ps(m0, scale) : _mm512_set1_ps(1);
    const __m512 f1 = scale ? _mm512_maskz_loadu_ps(m1, scale + 16) : _mm512_set1_ps(1);
    for (int64_t r = 0; r < rows; r++) {
        float *o = c + r * ldc;
        __m512 s0 = _mm512_mul_ps(acc[r][0], f0), s1 = _mm512_mul_ps(acc[r][1], f1);
        if (accumulate) {
            s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m0, o));
            s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(m1, o + 16));
        }
        _mm512_mask_storeu_ps(o, m0, s0);
        _mm512_mask_storeu_ps(o + 16, m1, s1);
    }
}
#endif

int qk_bf16_gemm(int64_t M, int64_t N, int64_t K, int64_t m0, int64_t m1, const uint16_t *a, const uint16_t *b,
                 int accumulate, float *c, int64_t ldc) {
    return qk_bf16_gemm_scaled(M, N, K, m0, m1, a, b, NULL, accumulate, c, ldc);
}

int qk_bf16_gemm_scaled(int64_t M, int64_t N, int64_t K, int64_t m0, int64_t m1, const uint16_t *a, const uint16_t *b,
                        const float *col_scale, int accumulate, float *c, int64_t ldc) {
#ifdef QK_X86
    if (!qk_avx512_bf16_available() || m0 % 8 != 0 || m0 < 0 || m1 > M) return -1;
    const int64_t Kp = round_up(K, 32), P = Kp / 2;
    // A block of 128 rows (K = 576: 144 KB) stays in L2 while every column block passes by.
    for (int64_t i0 = m0; i0 < m1; i0 += 128) {
        const int64_t i1 = i0 + 128 < m1 ? i0 + 128 : m1;
        for (int64_t j = 0; j < N; j += 32) {
            const uint16_t *b0 = b + (j / 16) * 16 * Kp, *b1 = b0 + 16 * Kp;
            const int64_t cols = N - j < 32 ? N - j : 32;
            for (int64_t i = i0; i < i1; i += 8) {
                const int64_t rows = i1 - i < 8 ? i1 - i : 8;
                kernel_8x32(rows, cols, a + i * Kp, P, b0, b1, col_scale ? col_scale + j : NULL, c + i * ldc + j, ldc,
                            accumulate);
            }
        }
    }
    return 0;
#else
    (void)M; (void)N; (void)K; (void)m0; (void)m1; (void)a; (void)b; (void)col_scale; (void)accumulate; (void)c; (void)ldc;
    return -1;
#endif
}

#ifdef QK_X86
__attribute__((target("avx512f,avx512bf16,avx512vl"), noinline))
static void chains_dpbf16(int64_t n) { QK_CHAINS("vdpbf16ps", n); }
#endif

int qk_bf16_dot_known_fast(void) {
#ifdef QK_X86
    return qk_avx512_bf16_available() && (__builtin_cpu_is("amdfam19h") || __builtin_cpu_is("amdfam1ah"));
#else
    return 0;
#endif
}

double qk_bf16_dot_speedup(void) {
#ifdef QK_X86
    if (!qk_avx512_bf16_available()) return 0;
    // VDPBF16PS does 32 multiply-adds per instruction (16 lanes × a pair), VFMADD 16.
    return qk_speedup_over_fma(chains_dpbf16, 32, 16, chains_fma);
#else
    return 0;
#endif
}
