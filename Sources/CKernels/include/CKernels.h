// Vectorised row kernels for GreenPrune's forward pass: exp-based reductions (softmax,
// log-sum-exp), SwiGLU, argmax. Each function is compiled for AVX-512F, AVX2 and a baseline
// and the CPU's best version is picked at load time (target_clones). Lengths are in floats;
// pointers need only float alignment.
#ifndef GREENPRUNE_CKERNELS_H
#define GREENPRUNE_CKERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/// max of x[0..<n] (n >= 1).
float gpk_max(const float *x, long n);

/// out[i] = exp(x[i] - shift); returns the sum. out may equal x.
float gpk_exp_shift_sum(float *out, const float *x, long n, float shift);

/// sum of exp(x[i] - shift), nothing stored.
float gpk_sum_exp_shift(const float *x, long n, float shift);

/// x[i] *= a.
void gpk_scale(float *x, long n, float a);

/// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). out may equal gate.
void gpk_silu_mul(float *out, const float *gate, const float *up, long n);

/// out[i] = gelu(x[i]) = 0.5·x·(1 + erf(x/√2)) (the erf form, as BERT's "gelu"), erf from a
/// polynomial fit within about 1e-7 of it. out may equal x.
void gpk_gelu(float *out, const float *x, long n);

/// erf(z) with the polynomials of `gpk_gelu` (for scalar callers and tests).
float gpk_erf(float z);

/// Index of the first maximum of x[0..<n] (n >= 1), as torch.argmax.
long gpk_argmax(const float *x, long n);

/// One row of 4-bit codes to floats: out[c] = (u_c − offset[g])·scale[g], g = c / group, where
/// u_c is nibble c mod 8 (least-significant first) of words[c / 8]. n and group multiples of 8.
void gpk_dequant_u4_row(float *out, const unsigned int *words, const float *scale, const float *offset,
                        long n, long group);

/// dst[i] = float(src[i]) for n IEEE float16 bit patterns (F16C where the CPU has it).
void gpk_f16_to_f32(const unsigned short *src, float *dst, long n);

/// dst[i] = float(src[i]) for n bfloat16 bit patterns (exact: each is a float32's top 16 bits).
void gpk_bf16_to_f32(const unsigned short *src, float *dst, long n);

/// One row of int8 codes to floats: out[c] = (q[c] − zero[g])·scale[g], g = c / group.
/// n and group multiples of 8.
void gpk_dequant_s8_row(float *out, const signed char *q, const float *scale, const float *zero,
                        long n, long group);

/// One RMSNorm row: y[i] = x[i] · r · w[i], r = 1/sqrt(mean(x²) + eps); returns r. y may equal x.
float gpk_rmsnorm_row(float *y, const float *x, const float *w, long n, float eps);

/// One LayerNorm row after an optional residual add: x[i] += r[i] (when r is not NULL), then
/// y[i] = (x[i] − mean)·rstd·w[i] + b[i], rstd = 1/sqrt(var + eps), mean and var over the n
/// values of x (two passes). y may equal x.
void gpk_add_layernorm_row(float *y, float *x, const float *r, const float *w, const float *b, long n, float eps);

/// One token's rotary embedding in place, HF `rotate_half` convention: x holds `heads` heads of
/// d floats (d even), and for each head and i < d/2, with c = cos[i], s = sin[i] (the position's
/// rows of the tables, d/2 each): x[i] ← x[i]·c − x[i+d/2]·s, x[i+d/2] ← x[i+d/2]·c + x[i]·s.
/// Products are not fused, so the result equals that formula in float32 exactly.
void gpk_rope_row(float *x, const float *cos, const float *sin, long heads, long d);

/// exp(x) with the same polynomial as the vector paths (for scalar callers).
float gpk_exp(float x);

/// Returns freed heap memory to the system (glibc malloc_trim); a no-op elsewhere. Called
/// after loading, when large parse trees have been freed.
void gpk_release_free_heap(void);

/// OpenBLAS's idle worker threads spin for 2^log2_cycles cycles (2^28 by default, about a tenth
/// of a second) before they sleep, taking a core from the caller's own threads between products.
/// Sets OPENBLAS_THREAD_TIMEOUT (4…30) and restarts the thread server so it takes effect. Does
/// nothing and returns 0 when the variable is already set or the library has no thread server.
/// Call before any other thread uses BLAS.
int gpk_blas_set_thread_timeout(int log2_cycles);

/// The gate between OpenBLAS products and the sections that set OpenBLAS to one thread
/// (blas_gate.c). `call_begin` before a product outside a section waits for any section to end
/// and returns whether it took the shared lock (0 on a thread working for a section), to be
/// handed to `call_end`. `section_begin` takes the lock exclusively and marks the calling thread
/// (0, taking nothing, when that thread already works for a section); `section_end` releases it.
/// `worker_begin` marks a thread running part of a section and returns its previous mark for
/// `worker_end`.
int gpk_blas_call_begin(void);
void gpk_blas_call_end(int locked);
int gpk_blas_section_begin(void);
void gpk_blas_section_end(void);
int gpk_blas_worker_begin(void);
void gpk_blas_worker_end(int was);
/// The thread count products outside sections run with, as last set through `BLAS.threads`
/// (0 until then: OpenBLAS's own setting at start-up).
int gpk_blas_configured_threads(void);
void gpk_blas_set_configured_threads(int n);

#include "gp_hdf5.h"
#include "gp_attention.h"
#include "gp_spawn.h"
#include "gp_finite.h"

#ifdef __cplusplus
}
#endif
#endif
