// Short-window attention of one (sequence, head) as direct vector loops (short_attention.c).
#ifndef GREENPRUNE_GP_ATTENTION_H
#define GREENPRUNE_GP_ATTENTION_H

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

#endif
