// Int8 × int8 → int32 matrix kernels for dynamically quantized activations (GreenPrune).
//
// Shapes: M rows of activations, N output channels (rows of the weight), K input width.
// A (M, K) int8 row-major, B (N, K) int8 row-major (the weight W as stored, out × in),
// C (M, N) float with leading dimension ldc. Weights are quantized per group of `group`
// consecutive input columns (group == K for per-channel / per-tensor weights).
#ifndef GREENPRUNE_CQUANTKERNELS_H
#define GREENPRUNE_CQUANTKERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction-set paths the int8 kernels can take.
enum {
    QK_ISA_PORTABLE = 0,   ///< plain C, any CPU
    QK_ISA_AVX2 = 1,       ///< vpmaddubsw + vpmaddwd (256-bit)
    QK_ISA_AVX512VNNI = 2  ///< vpdpbusd (256-bit, AVX-512 VNNI + VL)
};

/// The fastest path this CPU supports, found once with __builtin_cpu_supports.
int qk_best_isa(void);

/// 1 when `isa` can run on this CPU (the portable path always can).
int qk_isa_supported(int isa);

/// Σ_k a[k]·b[k] over `len` int8 pairs, exact in int32. a must lie in [-127, 127]
/// (activations are quantized to that range); b may use the full int8 range.
int32_t qk_dot_s8(int isa, const int8_t *a, const int8_t *b, int64_t len);

/// Dynamic symmetric per-row quantization (PyTorch quantize_dynamic's idea, per token):
/// scale[m] = max_k |x[m,k]| / 127 (1 when the row is zero), q[m,k] = round(x[m,k]/scale[m])
/// rounded half away from zero, in [-127, 127]. x (M, K) float, q (M, K) int8, scale (M).
/// The per-product preparation of A (M, K) shared by all column ranges: au[m,k] = A[m,k] + 128 as
/// an unsigned byte (vpdpbusd's unsigned operand) and asum[m, g] = Σ_{k∈g} A[m,k], g < K/group.
void qk_prepare_s8(int64_t M, int64_t K, int64_t group, const int8_t *A, uint8_t *au, int32_t *asum);

/// Uses AVX-512 where the CPU has it, with results bit-identical to the portable loop.
void qk_quantize_rows_s8(int64_t M, int64_t K, const float *x, int8_t *q, float *scale);

/// The portable loop itself (for tests of the vector path).
void qk_quantize_rows_s8_portable(int64_t M, int64_t K, const float *x, int8_t *q, float *scale);

/// C[m, n] = a_scale[m] · Σ_g b_scale[n, g] · (Σ_{k∈g} A[m,k]·B[n,k] − zp[n, g]·Σ_{k∈g} A[m,k])
/// for output columns n in [n0, n1). b_scale and b_zero are (N, K/group) row-major;
/// b_zero may be NULL (symmetric weights). group must divide K. Results overwrite C.
/// `au` and `asum` are what every column range of one product shares (see qk_prepare_s8);
/// either may be NULL, and is then computed inside the call.
void qk_gemm_s8(int isa, int64_t M, int64_t N, int64_t K, int64_t n0, int64_t n1,
                const int8_t *A, const uint8_t *au, const int32_t *asum, const float *a_scale,
                const int8_t *B, const float *b_scale, const int8_t *b_zero, int64_t group,
                float *C, int64_t ldc);

#ifdef __cplusplus
}
#endif

#endif
