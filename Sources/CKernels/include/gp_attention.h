// Attention kernels: fused blockwise attention (flash_attention.c) for long windows and
// short-window attention of one (sequence, head) as direct vector loops (short_attention.c).
#ifndef GREENPRUNE_GP_ATTENTION_H
#define GREENPRUNE_GP_ATTENTION_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction sets gpk_flash_attention can run on (GPK_ATTN_BEST: the best this CPU has).
enum gpk_attention_isa { GPK_ATTN_BEST = 0, GPK_ATTN_BASELINE = 1, GPK_ATTN_AVX2 = 2, GPK_ATTN_AVX512 = 3 };

/// Causal or full attention of `group` query heads that share one key/value head over `rq`
/// query tokens, the whole key range in blocks of `key_block` keys, in one pass. The group's
/// query rows are stacked (token-major) and taken in chunks of a few vectors' width, queries
/// along the vector lanes; per chunk and key block: scores Sᵀ = K·(scale·Q)ᵀ in register tiles,
/// an online softmax per lane (running max and sum, 2ˣ by a degree-5 polynomial within 1.8e-7
/// relative), Oᵀ += Vᵀ·Pᵀ in register tiles, and O / sum at the end. No score row longer than a
/// key block is held.
///
/// Layout: the query of head hh < group at token i < rq is q[i·q_stride + hh·d .. + d); the
/// output goes to the same place in `out`, which may equal q (a chunk reads its queries before it
/// writes their outputs, and only those).
/// Keys and values: row j of k and v at j·kv_stride (d floats each). Query i sits at absolute
/// position first + i and sees key j when j < valid and, if causal, j ≤ first + i. With
/// `row_seg` and `key_seg` (shared-prefix packing), a row whose own segment row_seg[i] is not 0
/// also skips every key whose key_seg[j] is neither 0 nor its own. A row that sees no key
/// gets zeros. d must be a positive multiple of 16.
///
/// `work` holds gpk_flash_attention_work(group, rq, d, key_block) floats (one chunk's worth, the
/// same for every rq). `isa` picks the instruction set (one the CPU lacks falls back to the next
/// lower). Returns the one used.
int gpk_flash_attention(float *out, const float *q, long q_stride, long group, long rq, long d,
                        const float *k, const float *v, long kv_stride, long valid, long first, int causal,
                        const int *row_seg, const int *key_seg, float scale, long key_block,
                        float *work, int isa);

/// Floats of `work` that gpk_flash_attention and gpk_flash_attention_bf16 need.
long gpk_flash_attention_work(long group, long rq, long d, long key_block);

/// gpk_flash_attention with both products on AVX-512 BF16 dot products (VDPBF16PS), float32
/// sums and a float32 softmax: the scaled queries, the keys, the values and the probabilities
/// are rounded to bf16 (nearest even). Keys and values come packed by `gpk_pack_bf16_kv`: key
/// row j at k16 + j·kv_stride, value pair row p (keys 2p, 2p+1) at vpairs + 2p·kv_stride, each
/// offset to the head's channels as k and v are (pairs: 2× the offset). Keys up to `valid`
/// rounded up to even must be packed. Returns 0, or −1 (nothing written) where the CPU lacks
/// AVX-512 BF16 (`gpk_flash_attention_bf16_available`) or d is not a positive multiple of 16.
int gpk_flash_attention_bf16(float *out, const float *q, long q_stride, long group, long rq, long d,
                             const uint16_t *k16, const uint16_t *vpairs, long kv_stride, long valid, long first,
                             int causal, const int *row_seg, const int *key_seg, float scale, long key_block,
                             float *work);

/// Whether this CPU runs gpk_flash_attention_bf16 (AVX-512 F, BW, VL and BF16).
int gpk_flash_attention_bf16_available(void);

/// Rounds `rows` rows of keys and values (`width` floats each, `stride` apart) to bf16 for
/// gpk_flash_attention_bf16: k16 (rows, width) row-major; vpairs (⌈rows/2⌉, width, 2) with
/// element (p, c, i) = v[2p + i][c], and a 0 for the missing key of an odd count.
void gpk_pack_bf16_kv(uint16_t *k16, uint16_t *vpairs, const float *k, const float *v, long rows, long width,
                      long stride);

/// Most keys `gpk_short_attention` takes (its scores of one query row stay in registers).
#define GPK_SHORT_ATTENTION_MAX_KEYS 64
/// Largest head dimension it takes (a multiple of 8).
#define GPK_SHORT_ATTENTION_MAX_DIM 256

/// out (t, d), row stride ldo = softmax(scale · q · kᵀ + bias) · v over the first `valid` keys:
/// q (t, d) rows ldq apart; k, v (valid, d) rows ldkv apart; bias (t, valid) rows ldb apart, or
/// NULL. Non-causal, no other mask. scratch holds d·⌈valid/8⌉·8 + ⌈valid/8⌉·8 floats. Returns 0,
/// or −1 (nothing written) when valid is outside 1…MAX_KEYS or d is not a multiple of 8 up to
/// MAX_DIM.
int gpk_short_attention(float *out, long ldo, const float *q, long ldq, const float *k, const float *v,
                        long ldkv, const float *bias, long ldb, long t, long valid, long d, float scale,
                        float *scratch);

#ifdef __cplusplus
}
#endif

#endif
