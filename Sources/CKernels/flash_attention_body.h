// The body of gpk_flash_attention for one instruction set, included by flash_attention.c once
// per set with FA_FN (the function's name), FA_TARGET (its target attribute), FA_EXP2V (2ˣ on a
// vector, x ≤ 0), FA_W (float lanes per vector), FA_QV (vectors of queries per chunk), FA_KR
// (keys per register tile of S) and FA_CR (head channels per register tile of O, a divisor of
// 16). A tile is FA_KR or FA_CR rows × FA_QV vectors of accumulators, sized to the register file.
// With FA_BF16 (AVX-512 BF16 only) both products multiply bf16 pairs on VDPBF16PS with float32
// sums: k holds bf16 key rows, v bf16 value pairs (pair row p = keys 2p and 2p+1 interleaved per
// channel, 2·kv_stride halves apart: `gpk_pack_bf16_kv`), Qᵀ and Pᵀ are rounded to bf16 pairs
// along their sums' axes (channels, keys), and the softmax stays float32.
//
// Everything runs transposed, queries along the vector lanes: Sᵀ (keys × queries) = K · Qᵀ and
// Oᵀ (channels × queries) += Vᵀ · Pᵀ. So K and V are read in their own row-major layout (one
// broadcast per element, no transposed copy of each key block), and the softmax over keys is
// lane-wise across rows of Sᵀ: the running max, sum and rescale factor of FA_W queries are one
// vector each, with no horizontal reductions and no per-row scalar work.
FA_TARGET static void FA_FN(float *out, const float *q, long q_stride, long group, long rq, long d,
                            const FA_KV_T *k, const FA_KV_T *v, long kv_stride, long valid, long first, int causal,
                            const int *row_seg, const int *key_seg, float scale, long key_block, float *work) {
    typedef float fv __attribute__((vector_size(FA_W * 4)));
    typedef int32_t fvi __attribute__((vector_size(FA_W * 4)));
    enum { W = FA_W, QV = FA_QV, QW = FA_W * FA_QV, KR = FA_KR, CR = FA_CR };
    const long rows = group * rq, kb = fa_round_up(key_block, KR);
    // Per chunk of QW stacked query rows: Qᵀ (d × QW, scaled), Oᵀ (d × QW), Sᵀ then Pᵀ (kb × QW),
    // and per lane the keys it may see (lim) and its own segment (own).
    float *qt = work, *ot = qt + d * QW, *st = ot + d * QW;
    int32_t *lim_a = (int32_t *)(st + kb * QW), *own_a = lim_a + QW;
#ifdef FA_BF16
    // Qᵀ as bf16 pairs of channels (d/2 × QW, in qt's place) and Pᵀ as pairs of keys (kb/2 × QW).
    uint32_t *qt2 = (uint32_t *)qt, *pt2 = (uint32_t *)(own_a + QW);
#endif
    const fv neg_inf = FA_SPLAT(fv, -__builtin_inff());
    const float scale2 = scale * 1.44269504088896341f;

    // Row l of the stack is query token l / group of head l % group, so that a chunk holds
    // QW / group consecutive tokens and a causal chunk's last visible key is close to its first's.
    for (long r0 = 0; r0 < rows; r0 += QW) {
        const long nr = fa_min(QW, rows - r0);
        long most = 0, least = LONG_MAX;
        int segs = 0;
        const float *src[QW];
        for (long l = 0; l < QW; l++) {
            if (l < nr) {
                const long i = (r0 + l) / group, hh = (r0 + l) % group;
                src[l] = q + i * q_stride + hh * d;
                const long lim = causal ? fa_min(valid, first + i + 1) : valid;
                lim_a[l] = (int32_t)fa_max(lim, 0);
                own_a[l] = row_seg ? row_seg[i] : 0;
                segs |= own_a[l] != 0;
                most = fa_max(most, lim_a[l]);
                least = fa_min(least, lim_a[l]);
            } else {
                // Padding lanes: zero queries that see every key, never the reason to mask.
                src[l] = NULL;
                lim_a[l] = INT32_MAX;
                own_a[l] = 0;
            }
        }
        // Qᵀ scaled by scale·log₂e: scores in base 2, exp(s) = 2^(s·log₂e). Written row by row
        // (stores in sequence, the strided accesses are loads).
#ifdef FA_BF16
        for (long c = 0; c < d; c += 2)
            for (long l = 0; l < QW; l++)
                qt2[c / 2 * QW + l] = l < nr ? qk_bf16_round(src[l][c] * scale2) | (uint32_t)qk_bf16_round(src[l][c + 1] * scale2) << 16 : 0;
#else
        for (long c = 0; c < d; c++)
            for (long l = 0; l < QW; l++) qt[c * QW + l] = l < nr ? src[l][c] * scale2 : 0;
#endif
        if (!key_seg) segs = 0;
        memset(ot, 0, sizeof(float) * (size_t)(d * QW));
        fv run_max[QV], run_sum[QV];
        fvi lim[QV], own[QV];
        FA_UNROLL for (int x = 0; x < QV; x++) {
            run_max[x] = neg_inf;
            run_sum[x] = FA_SPLAT(fv, 0.0f);
            lim[x] = FA_LOAD(fvi, lim_a + x * W);
            own[x] = FA_LOAD(fvi, own_a + x * W);
        }

        for (long j0 = 0; j0 < most; j0 += kb) {
            const long n = fa_min(kb, most - j0);
            // Some lane of the chunk misses some key of this block: the causal diagonal, the
            // padding past `valid`, or segments.
            const int masked = least < j0 + n || segs;

            // Sᵀ (n × QW) = K_block · Qᵀ, KR keys × QW queries at a time. The last tile's rows
            // past the block repeat its last key (no read past `valid`) and are never used.
            fv blk_max[QV];
            FA_UNROLL for (int x = 0; x < QV; x++) blk_max[x] = neg_inf;
            for (long jt = 0; jt < n; jt += KR) {
                const FA_KV_T *kr[KR];
                FA_UNROLL for (int r = 0; r < KR; r++) kr[r] = k + (j0 + fa_min(jt + r, n - 1)) * kv_stride;
                fv acc[KR][QV];
                FA_UNROLL for (int r = 0; r < KR; r++) FA_UNROLL for (int x = 0; x < QV; x++) acc[r][x] = FA_SPLAT(fv, 0.0f);
#ifdef FA_BF16
                for (long c = 0; c < d; c += 2) {
                    __m512bh qx[QV];
                    FA_UNROLL for (int x = 0; x < QV; x++) qx[x] = (__m512bh)_mm512_loadu_si512(qt2 + c / 2 * QW + x * W);
                    FA_UNROLL for (int r = 0; r < KR; r++) {
                        const __m512bh kb_ = (__m512bh)_mm512_set1_epi32((int)FA_LOAD(uint32_t, kr[r] + c));
                        FA_UNROLL for (int x = 0; x < QV; x++) acc[r][x] = (fv)_mm512_dpbf16_ps((__m512)acc[r][x], qx[x], kb_);
                    }
                }
#else
                for (long c = 0; c < d; c++) {
                    fv qx[QV];
                    FA_UNROLL for (int x = 0; x < QV; x++) qx[x] = FA_LOAD(fv, qt + c * QW + x * W);
                    FA_UNROLL for (int r = 0; r < KR; r++) {
                        const fv kb_ = FA_SPLAT(fv, kr[r][c]);
                        FA_UNROLL for (int x = 0; x < QV; x++) acc[r][x] += kb_ * qx[x];
                    }
                }
#endif
                FA_UNROLL for (int r = 0; r < KR; r++) FA_UNROLL for (int x = 0; x < QV; x++) {
                    FA_STORE(st + (jt + r) * QW + x * W, acc[r][x]);
                    if (!masked) blk_max[x] = FA_VMAX(fv, fvi, blk_max[x], acc[r][x]);
                }
            }
            if (masked) {
                // Hidden keys become -inf (exactly 0 after the exponential below).
                for (long j = 0; j < n; j++) {
                    const fvi key = (fvi){0} + (int32_t)(j0 + j);
                    const fvi ks = (fvi){0} + (int32_t)(segs ? key_seg[j0 + j] : 0);
                    FA_UNROLL for (int x = 0; x < QV; x++) {
                        fvi hide = key >= lim[x];
                        if (segs) hide |= (own[x] != 0) & (ks != 0) & (ks != own[x]);
                        const fv s = FA_LOAD(fv, st + j * QW + x * W);
                        const fv sm = (fv)((hide & (fvi)neg_inf) | (~hide & (fvi)s));
                        FA_STORE(st + j * QW + x * W, sm);
                        blk_max[x] = FA_VMAX(fv, fvi, blk_max[x], sm);
                    }
                }
            }

            // Online softmax, lane by lane: m_new = max(m, block max); α = 2^(m − m_new) rescales
            // the sum and O (0 while a lane has seen nothing, whose O and sum are 0); a lane that
            // sees nothing in this block either keeps shift 0 so that −inf − shift stays −inf.
            fv alpha[QV], shift[QV];
            FA_UNROLL for (int x = 0; x < QV; x++) {
                const fv m_new = FA_VMAX(fv, fvi, run_max[x], blk_max[x]);
                const fvi none = m_new == neg_inf, fresh = run_max[x] == neg_inf;
                shift[x] = (fv)(~none & (fvi)m_new);
                alpha[x] = (fv)(~fresh & (fvi)FA_EXP2V(run_max[x] - shift[x]));
                run_max[x] = m_new;
            }
            // Pᵀ = 2^(Sᵀ − shift) in place, summed per lane.
            fv sum[QV];
            FA_UNROLL for (int x = 0; x < QV; x++) sum[x] = FA_SPLAT(fv, 0.0f);
            if (masked) {
                for (long j = 0; j < n; j++) FA_UNROLL for (int x = 0; x < QV; x++) {
                    const fv s = FA_LOAD(fv, st + j * QW + x * W);
                    // -inf (hidden) gives exactly 0, not the clamped polynomial's 2^-126.
                    const fv e = (fv)((fvi)FA_EXP2V(s - shift[x]) & (fvi)(s != neg_inf));
                    FA_STORE(st + j * QW + x * W, e);
                    sum[x] += e;
                }
            } else {
                for (long j = 0; j < n; j++) FA_UNROLL for (int x = 0; x < QV; x++) {
                    const fv e = FA_EXP2V(FA_LOAD(fv, st + j * QW + x * W) - shift[x]);
                    FA_STORE(st + j * QW + x * W, e);
                    sum[x] += e;
                }
            }
            FA_UNROLL for (int x = 0; x < QV; x++) run_sum[x] = run_sum[x] * alpha[x] + sum[x];

#ifdef FA_BF16
            // Pᵀ as bf16 pairs of keys j, j+1 per lane (an odd block's last pair gets a 0 key).
            const long np = (n + 1) / 2;
            for (long jp = 0; jp < np; jp++) FA_UNROLL for (int x = 0; x < QV; x++) {
                const __m512 p0 = _mm512_loadu_ps(st + 2 * jp * QW + x * W);
                const __m512 p1 = 2 * jp + 1 < n ? _mm512_loadu_ps(st + (2 * jp + 1) * QW + x * W) : _mm512_setzero_ps();
                _mm512_storeu_si512(pt2 + jp * QW + x * W, fa_bf16_pairs(p0, p1));
            }
            // Oᵀ = α·Oᵀ + V_blockᵀ · Pᵀ over pairs of keys (j0 is even: kb is).
            for (long c0 = 0; c0 < d; c0 += CR) {
                fv acc[CR][QV];
                FA_UNROLL for (int r = 0; r < CR; r++) FA_UNROLL for (int x = 0; x < QV; x++)
                    acc[r][x] = FA_LOAD(fv, ot + (c0 + r) * QW + x * W) * alpha[x];
                const FA_KV_T *vr = v + j0 / 2 * 2 * kv_stride + 2 * c0;
                for (long jp = 0; jp < np; jp++, vr += 2 * kv_stride) {
                    __m512bh px[QV];
                    FA_UNROLL for (int x = 0; x < QV; x++) px[x] = (__m512bh)_mm512_loadu_si512(pt2 + jp * QW + x * W);
                    FA_UNROLL for (int r = 0; r < CR; r++) {
                        const __m512bh vb = (__m512bh)_mm512_set1_epi32((int)FA_LOAD(uint32_t, vr + 2 * r));
                        FA_UNROLL for (int x = 0; x < QV; x++) acc[r][x] = (fv)_mm512_dpbf16_ps((__m512)acc[r][x], px[x], vb);
                    }
                }
                FA_UNROLL for (int r = 0; r < CR; r++) FA_UNROLL for (int x = 0; x < QV; x++)
                    FA_STORE(ot + (c0 + r) * QW + x * W, acc[r][x]);
            }
#else

            // Oᵀ = α·Oᵀ + V_blockᵀ · Pᵀ, CR channels × QW queries at a time (d is a multiple of 16).
            for (long c0 = 0; c0 < d; c0 += CR) {
                fv acc[CR][QV];
                FA_UNROLL for (int r = 0; r < CR; r++) FA_UNROLL for (int x = 0; x < QV; x++)
                    acc[r][x] = FA_LOAD(fv, ot + (c0 + r) * QW + x * W) * alpha[x];
                const float *vr = v + j0 * kv_stride + c0;
                for (long j = 0; j < n; j++, vr += kv_stride) {
                    fv px[QV];
                    FA_UNROLL for (int x = 0; x < QV; x++) px[x] = FA_LOAD(fv, st + j * QW + x * W);
                    FA_UNROLL for (int r = 0; r < CR; r++) {
                        const fv vb = FA_SPLAT(fv, vr[r]);
                        FA_UNROLL for (int x = 0; x < QV; x++) acc[r][x] += vb * px[x];
                    }
                }
                FA_UNROLL for (int r = 0; r < CR; r++) FA_UNROLL for (int x = 0; x < QV; x++)
                    FA_STORE(ot + (c0 + r) * QW + x * W, acc[r][x]);
            }
#endif
        }

        // out = O / ℓ (rows that saw nothing: 0).
        float z[QW];
        FA_UNROLL for (int x = 0; x < QV; x++) FA_STORE(z + x * W, run_sum[x]);
        for (long l = 0; l < nr; l++) {
            const long i = (r0 + l) / group, hh = (r0 + l) % group;
            const float inv = z[l] > 0 ? 1 / z[l] : 0;
            float *dst = out + i * q_stride + hh * d;
            for (long c = 0; c < d; c++) dst[c] = ot[c * QW + l] * inv;
        }
    }
}
