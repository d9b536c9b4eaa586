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

// ---------------------------------------------------------------------------------------------
// bf16 products on AMX tiles (amx_bf16.c): float activations × quantized weights expanded to bf16.
// A (M, K) is packed to (Mp, Kp) bf16 row-major and W (N, K) to (Np/16) blocks of (Kp/32)
// VNNI tiles of 16×32 bf16 (tile t of block j: element [r][2c+e] = W[16j+c][32t+2r+e]),
// with Mp, Np, Kp the sizes rounded up to 32 and every padding value zero.

/// 1 when the CPU has AMX-BF16 and AVX512-BF16 and the kernel granted this process the tile
/// data state (Linux arch_prctl ARCH_REQ_XCOMP_PERM, asked once).
int qk_amx_bf16_available(void);

/// f to bf16, rounded to nearest with ties to even (NaN stays NaN).
uint16_t qk_bf16_round(float f);

/// Rows [m0, m1) of the packed A: row m < M is x[m, 0..<K] (row stride ldx) in bf16, zero
/// padded to Kp; rows M ≤ m < Mp are zero. a holds Mp·Kp values.
void qk_amx_pack_a(int64_t m0, int64_t m1, int64_t M, int64_t K, const float *x, int64_t ldx, uint16_t *a);

/// One block of 16 weight rows (w (rows, K), row stride ldw, rows ≤ 16; missing rows are zero)
/// to its Kp/32 tiles (Kp·16 values). Returns 0, or -1 when scratch memory runs out.
int qk_amx_pack_b16(int64_t rows, int64_t K, const float *w, int64_t ldw, uint16_t *tiles);

/// One block of 16 rows of a quantized weight straight to its Kp/32 tiles, the same bits as
/// qk_amx_pack_b16 of the dequantized rows: value k of row r (r < rows ≤ 16; missing rows are
/// zero) is (q − offset[r·gpr + k/group]) · scale[r·gpr + k/group] (scale NULL: no product),
/// with q the unsigned nibble k of the row (bits 4: eight per little-endian uint32, least
/// significant first) or its int8 code (bits 8); rows start row_bytes apart in data. Needs
/// AVX-512 BF16, K a multiple of 32 and group a multiple of 16 dividing K. Returns 0, or -1
/// when those do not hold (the caller then dequantizes and uses qk_amx_pack_b16). The blocks are
/// also what qk_bf16_gemm_scaled reads, so CPUs with AVX-512 BF16 and no AMX use this too.
int qk_amx_pack_q(int64_t rows, int64_t K, int bits, const void *data, int64_t row_bytes, const float *scale,
                  const float *offset, int64_t gpr, int64_t group, uint16_t *tiles);

/// C[m, n] = col_scale[n] · Σ_k A[m,k]·W[n,k] (col_scale NULL: 1), plus C's old value when
/// accumulate is nonzero, for m < M and output columns n in [n0, n1), from packed A and B; n0 a
/// multiple of 32, n1 a multiple of 32 or N. C has row stride ldc and only those entries are
/// written. Returns 0, or -1 when AMX is unavailable or the range is invalid.
int qk_amx_bf16_gemm(int64_t M, int64_t N, int64_t K, int64_t n0, int64_t n1, const uint16_t *a, const uint16_t *b,
                     const float *col_scale, int accumulate, float *c, int64_t ldc);

// bf16 × bf16 products on AVX-512 BF16 (bf16_dot.c): float activations (rounded to bf16 by
// qk_amx_pack_a) × bfloat16 weights, float32 accumulation.

/// Whether this CPU has AVX-512 BF16 (VDPBF16PS).
int qk_avx512_bf16_available(void);

/// Packs column blocks j0 ..< j1 (16 weight rows each) of the bf16 weight w (N, K), row stride
/// ldw, into b (VNNI layout, see bf16_dot.c); rows past N and columns past K are zero.
void qk_bf16_pack_b(int64_t j0, int64_t j1, int64_t N, int64_t K, const uint16_t *w, int64_t ldw, uint16_t *b);

/// c[i][j] (+)= Σ_k a[i][k]·b[k][j] for rows m0 ..< m1 (m0 a multiple of 8) and all N columns:
/// a packed by qk_amx_pack_a, b by qk_bf16_pack_b (N rounded up to 32). Returns -1 (computing
/// nothing) without AVX-512 BF16.
int qk_bf16_gemm(int64_t M, int64_t N, int64_t K, int64_t m0, int64_t m1, const uint16_t *a, const uint16_t *b,
                 int accumulate, float *c, int64_t ldc);

/// As qk_bf16_gemm, with column j of the product multiplied by col_scale[j] (NULL: 1) before it
/// is stored or added; col_scale holds N values. Returns -1 (computing nothing) without AVX-512
/// BF16 or when m0 is not a multiple of 8 or m1 > M.
int qk_bf16_gemm_scaled(int64_t M, int64_t N, int64_t K, int64_t m0, int64_t m1, const uint16_t *a, const uint16_t *b,
                        const float *col_scale, int accumulate, float *c, int64_t ldc);

/// Multiply-adds per second of VDPBF16PS over those of float32 VFMADD (512-bit, independent
/// chains, the fastest of 40 short timed rounds: a few milliseconds), or 0 without AVX-512 BF16.
/// Above 1 the bf16 dot-product kernel can outrun float32 sgemm; some CPUs with AVX-512 BF16
/// issue VDPBF16PS at a quarter of VFMADD's rate, so it cannot.
double qk_bf16_dot_speedup(void);

/// 1 when VDPBF16PS is known from the CPU's identity to do more multiply-adds per second than
/// float32 FMA, without timing it: AVX-512 BF16 on AMD (Zen 4 and later, families 19h and 1Ah,
/// which issue it at FMA's rate with twice its multiply-adds); 0 elsewhere, where
/// qk_bf16_dot_speedup decides.
int qk_bf16_dot_known_fast(void);

// Float activations quantized per row to int16 × weight codes expanded to int16 (int16_dot.c):
// exact int32 sums flushed to float32 with the weight scales, on AVX-512 VNNI (VPDPWSSD) or AVX2
// (VPMADDWD + VPADDD), both bit-identical to the portable loop. Layouts A (Mp, Kp) int16 with a
// row scale each, B the VNNI blocks of qk_bf16_pack_b in int16, S the block scales, as described
// in int16_dot.c (Mp = M rounded up to 8, Kp = K rounded up to 32, Np = N rounded up to 32).

/// The best int16 kernel this CPU runs (the `isa` arguments below): QK_ISA_AVX512VNNI (AVX-512
/// F/BW/VL/VNNI), QK_ISA_AVX2 (AVX2 and FMA), or QK_ISA_PORTABLE (neither: only the plain loop).
int qk_int16_dot_isa(void);

/// Whether qk_int16_dot_isa() is nonzero.
int qk_int16_dot_available(void);

/// Rows [m0, m1) of A from x (M, K), row stride ldx: row m < M is round(x[m, k] · 32767 / max_k
/// |x[m, k]|) (to nearest, ties to even) with row_scale[m] = max / 32767; a zero (or subnormal)
/// row is zero with scale 0, a row holding inf or NaN is zero with scale NaN; rows past M and
/// columns past K are zero. a holds Mp·Kp values, row_scale Mp. On qk_int16_dot_isa().
void qk_int16_pack_a(int64_t m0, int64_t m1, int64_t M, int64_t K, const float *x, int64_t ldx, int16_t *a,
                     float *row_scale);

/// The same in plain C, the same values: for tests.
void qk_int16_pack_a_portable(int64_t m0, int64_t m1, int64_t M, int64_t K, const float *x, int64_t ldx, int16_t *a,
                              float *row_scale);

/// qk_int16_pack_a on the given instruction set (the same values on each); -1 when this CPU
/// cannot run it.
int qk_int16_pack_a_isa(int isa, int64_t m0, int64_t m1, int64_t M, int64_t K, const float *x, int64_t ldx,
                        int16_t *a, float *row_scale);

/// One block of 16 weight rows (rows ≤ 16; missing rows are zero) from their codes: b (Kp·16
/// values) gets q − z of each value (bits 4: the nibble u of eight per little-endian uint32,
/// least significant first, q = u − 8; bits 8: the int8 code), z = zero[r·gpr + k/group] (zero
/// NULL: 0); s (gpr·16 values) gets s[g·16 + r] = scale[r·gpr + g]. Rows start row_bytes apart
/// in data. group must divide K into gpr groups, and be even when gpr > 1. Returns 0, or -1 when
/// those do not hold.
int qk_int16_pack_q(int64_t rows, int64_t K, int bits, const void *data, int64_t row_bytes, const float *scale,
                    const int8_t *zero, int64_t gpr, int64_t group, int16_t *b, float *s);

/// qk_int16_pack_q on the given instruction set (the same values on each); -1 also when this CPU
/// cannot run it.
int qk_int16_pack_q_isa(int isa, int64_t rows, int64_t K, int bits, const void *data, int64_t row_bytes,
                        const float *scale, const int8_t *zero, int64_t gpr, int64_t group, int16_t *b, float *s);

/// C[m, n] = row_scale[m] · Σ_segments scale[n, g] · Σ_{k ∈ segment} A[m, k]·B[n, k] (plus C's old
/// value when accumulate is nonzero) for rows [m0, m1) (m0 a multiple of 8) and columns [n0, n1)
/// (n0 a multiple of 32), with a and row_scale from qk_int16_pack_a, b and s from qk_int16_pack_q
/// (blocks of N rounded up to 32); C has row stride ldc. The segments split k at every group
/// boundary and at least every 256 (bits 8) or 4096 (bits 4) values, so the int32 sums are exact;
/// each is added to the float sum with one fused multiply-add. On qk_int16_dot_isa(); returns -1
/// (computing nothing) when that is 0 or the ranges or groups are invalid.
int qk_int16_gemm(int64_t M, int64_t N, int64_t K, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int bits,
                  const int16_t *a, const float *row_scale, const int16_t *b, const float *s, int64_t gpr, int64_t group,
                  int accumulate, float *c, int64_t ldc);

/// The same arithmetic in plain C, in the same order (bit-identical results): the reference the
/// tests hold the vector kernels to. Returns -1 when the ranges or groups are invalid.
int qk_int16_gemm_portable(int64_t M, int64_t N, int64_t K, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int bits,
                           const int16_t *a, const float *row_scale, const int16_t *b, const float *s, int64_t gpr,
                           int64_t group, int accumulate, float *c, int64_t ldc);

/// qk_int16_gemm on the given instruction set (bit-identical results on each); -1 also when this
/// CPU cannot run it.
int qk_int16_gemm_isa(int isa, int64_t M, int64_t N, int64_t K, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                      int bits, const int16_t *a, const float *row_scale, const int16_t *b, const float *s, int64_t gpr,
                      int64_t group, int accumulate, float *c, int64_t ldc);

/// 1 when qk_int16_dot_isa()'s integer step is known from the CPU's identity to do more
/// multiply-adds per second than float32 FMA, without timing it: AVX-512 VNNI (VPDPWSSD issues at
/// FMA's rate with twice its multiply-adds), or AVX2 on AMD Zen (families 17h, 19h, 1Ah: two
/// VPMADDWD per cycle next to two FMAs); 0 elsewhere (other AVX2 CPUs, whose VPMADDWD rates
/// differ by generation).
int qk_int16_dot_known_fast(void);

/// Multiply-adds per second of qk_int16_dot_isa()'s integer step over those of float32 VFMADD at
/// the same width (VPDPWSSD against zmm FMA; VPMADDWD + VPADDD against ymm FMA; independent
/// chains, as qk_bf16_dot_speedup), or 0 when that is 0.
double qk_int16_dot_speedup(void);

#ifdef __cplusplus
}
#endif

#endif
