// The body of gpk_flash_attention for one instruction set, included by flash_attention.c once
// per set with FA_FN (the function's name), FA_TARGET (its target attribute), FA_EXP2V (2ˣ on a
// vector, x ≤ 0), FA_W (float lanes per vector) and FA_NV (vectors per row of a tile: FA_R rows ×
// FA_NV·FA_W columns of accumulators, sized to the register file: 24 of 32 zmm, 12 of 16 ymm
// or xmm).
FA_TARGET static void FA_FN(float *out, const float *q, long q_stride, long group, long rq, long d,
                            const float *k, const float *v, long kv_stride, long valid, long first, int causal,
                            const int *row_seg, const int *key_seg, float scale, long key_block, float *work) {
    typedef float fv __attribute__((vector_size(FA_W * 4)));
    typedef int32_t fvi __attribute__((vector_size(FA_W * 4)));
    enum { W = FA_W, NV = FA_NV, CW = FA_W * FA_NV, R = FA_R };
    const long rows = group * rq, rows_pad = fa_round_up(rows, R), kb = fa_round_up(key_block, FA_COLS);
    float *qs = work, *o = qs + rows_pad * d, *kt = o + rows_pad * d, *sc = kt + d * kb;
    // Running sums stay one vector (W lanes, at most 16) per row, summed once at the end, so a
    // block adds its exponentials without a horizontal reduction.
    float *run_max = sc + R * kb, *run_sum = run_max + rows_pad;
    const fv neg_inf = FA_SPLAT(fv, -__builtin_inff());
    const float scale2 = scale * 1.44269504088896341f;

    // Stack the group's queries (row hh·rq + i), scaled by scale·log₂e so that the scores are in
    // base 2 (exp(s) = 2^(s·log₂e)); pad to whole tiles with zeros.
    for (long hh = 0; hh < group; hh++)
        for (long i = 0; i < rq; i++) {
            const float *src = q + i * q_stride + hh * d;
            float *dst = qs + (hh * rq + i) * d;
            for (long c = 0; c < d; c++) dst[c] = src[c] * scale2;
        }
    memset(qs + rows * d, 0, sizeof(float) * (size_t)((rows_pad - rows) * d));
    memset(o, 0, sizeof(float) * (size_t)(rows_pad * d));
    for (long r = 0; r < rows_pad; r++) run_max[r] = -__builtin_inff();
    memset(run_sum, 0, sizeof(float) * (size_t)(rows_pad * W));

    const long keys_end = causal ? fa_min(valid, first + rq) : valid;
    for (long j0 = 0; j0 < keys_end; j0 += kb) {
        const long n = fa_min(kb, keys_end - j0), npad = fa_round_up(n, CW);
        // Kᵀ of the block (d × npad), zero past its last key, so a score tile loads whole vectors.
        for (long j = 0; j < n; j++) {
            const float *kr = k + (j0 + j) * kv_stride;
            for (long c = 0; c < d; c++) kt[c * npad + j] = kr[c];
        }
        for (long c = 0; c < d; c++)
            for (long j = n; j < npad; j++) kt[c * npad + j] = 0;

        for (long r0 = 0; r0 < rows_pad; r0 += R) {
            // Keys of this block each row sees, and the most any row of the tile sees.
            long seen[R], most = 0;
            for (int r = 0; r < R; r++) {
                long row = r0 + r, lim = 0;
                if (row < rows) {
                    long i = row % rq;
                    lim = causal ? fa_min(valid, first + i + 1) : valid;
                }
                seen[r] = fa_max(0, fa_min(lim - j0, n));
                most = fa_max(most, seen[r]);
            }
            if (most == 0) continue;
            const long cols = fa_round_up(most, W);

            // S (R × cols) = Q_tile · Kᵀ, one R × CW register tile at a time, then R × W tiles for
            // the last columns (a causal diagonal block's tiles end at their last visible key).
            long c0 = 0;
            for (; c0 + CW <= cols; c0 += CW) {
                fv acc[R][NV];
                FA_UNROLL for (int r = 0; r < R; r++) FA_UNROLL for (int x = 0; x < NV; x++) acc[r][x] = FA_SPLAT(fv, 0.0f);
                const float *qt = qs + r0 * d, *kc = kt + c0;
                for (long c = 0; c < d; c++) {
                    fv kx[NV];
                    FA_UNROLL for (int x = 0; x < NV; x++) kx[x] = FA_LOAD(fv, kc + c * npad + x * W);
                    FA_UNROLL for (int r = 0; r < R; r++) {
                        const fv qb = FA_SPLAT(fv, qt[r * d + c]);
                        FA_UNROLL for (int x = 0; x < NV; x++) acc[r][x] += qb * kx[x];
                    }
                }
                FA_UNROLL for (int r = 0; r < R; r++) FA_UNROLL for (int x = 0; x < NV; x++)
                    FA_STORE(sc + r * kb + c0 + x * W, acc[r][x]);
            }
            for (; c0 < cols; c0 += W) {
                fv acc[R];
                FA_UNROLL for (int r = 0; r < R; r++) acc[r] = FA_SPLAT(fv, 0.0f);
                const float *qt = qs + r0 * d, *kc = kt + c0;
                for (long c = 0; c < d; c++) {
                    const fv kx = FA_LOAD(fv, kc + c * npad);
                    FA_UNROLL for (int r = 0; r < R; r++) acc[r] += FA_SPLAT(fv, qt[r * d + c]) * kx;
                }
                FA_UNROLL for (int r = 0; r < R; r++) FA_STORE(sc + r * kb + c0, acc[r]);
            }

            // Online softmax per row (base 2): P = 2^(S − m_new) in place, ℓ ← ℓ·α + ΣP with
            // α = 2^(m_old − m_new); masked and unseen columns become exactly 0.
            // Two passes over the tile's rows, so that the rows' max reductions overlap: block
            // maxima and new running maxima first, then the exponentials.
            float alpha[R], shift[R];
            long nvec[R];
            int masked[R];
            for (int r = 0; r < R; r++) {
                float *srow = sc + r * kb;
                const long ns = seen[r], row = r0 + r;
                alpha[r] = 1;
                nvec[r] = 0;
                if (ns == 0) continue;
                const long nv = fa_round_up(ns, W);
                masked[r] = nv > ns;
                if (key_seg && row_seg[row % rq] != 0) {
                    const int own = row_seg[row % rq];
                    for (long j = 0; j < ns; j++) {
                        const int sg = key_seg[j0 + j];
                        if (sg != 0 && sg != own) { srow[j] = -__builtin_inff(); masked[r] = 1; }
                    }
                }
                for (long j = ns; j < nv; j++) srow[j] = -__builtin_inff();
                fv mv = neg_inf;
                for (long j = 0; j < nv; j += W) mv = FA_VMAX(fv, fvi, mv, FA_LOAD(fv, srow + j));
                const float bm = __builtin_reduce_max(mv);
                if (bm == -__builtin_inff()) continue;
                const float m_old = run_max[row], m_new = m_old > bm ? m_old : bm;
                if (m_old != -__builtin_inff()) {
                    fv e = FA_EXP2V(FA_SPLAT(fv, m_old - m_new));
                    alpha[r] = e[0];
                } else {
                    alpha[r] = 0;
                }
                shift[r] = m_new;
                run_max[row] = m_new;
                nvec[r] = nv;
            }
            for (int r = 0; r < R; r++) {
                float *srow = sc + r * kb;
                const long nv = nvec[r];
                if (nv == 0) { memset(srow, 0, sizeof(float) * (size_t)cols); continue; }
                const fv sh = FA_SPLAT(fv, shift[r]);
                fv acc = FA_SPLAT(fv, 0.0f);
                if (masked[r]) {
                    for (long j = 0; j < nv; j += W) {
                        const fv s = FA_LOAD(fv, srow + j);
                        // -inf (masked) gives exactly 0, not the clamped polynomial's 2^-126.
                        const fv e = (fv)((fvi)FA_EXP2V(s - sh) & (fvi)(s != neg_inf));
                        FA_STORE(srow + j, e);
                        acc += e;
                    }
                } else {
                    for (long j = 0; j < nv; j += W) {
                        const fv e = FA_EXP2V(FA_LOAD(fv, srow + j) - sh);
                        FA_STORE(srow + j, e);
                        acc += e;
                    }
                }
                if (cols > nv) memset(srow + nv, 0, sizeof(float) * (size_t)(cols - nv));
                FA_STORE(run_sum + (r0 + r) * W, FA_LOAD(fv, run_sum + (r0 + r) * W) * alpha[r] + acc);
            }

            // O_tile = α·O_tile + P · V_block, keys [0, most), NV vectors of columns at a time.
            for (c0 = 0; c0 + CW <= d; c0 += CW) {
                fv acc[R][NV];
                FA_UNROLL for (int r = 0; r < R; r++) {
                    const fv a = FA_SPLAT(fv, alpha[r]);
                    FA_UNROLL for (int x = 0; x < NV; x++) acc[r][x] = FA_LOAD(fv, o + (r0 + r) * d + c0 + x * W) * a;
                }
                for (long j = 0; j < most; j++) {
                    const float *vr = v + (j0 + j) * kv_stride + c0;
                    fv vx[NV];
                    FA_UNROLL for (int x = 0; x < NV; x++) vx[x] = FA_LOAD(fv, vr + x * W);
                    FA_UNROLL for (int r = 0; r < R; r++) {
                        const fv p = FA_SPLAT(fv, sc[r * kb + j]);
                        FA_UNROLL for (int x = 0; x < NV; x++) acc[r][x] += p * vx[x];
                    }
                }
                FA_UNROLL for (int r = 0; r < R; r++) FA_UNROLL for (int x = 0; x < NV; x++)
                    FA_STORE(o + (r0 + r) * d + c0 + x * W, acc[r][x]);
            }
            for (; c0 < d; c0 += W) {
                fv acc[R];
                FA_UNROLL for (int r = 0; r < R; r++) acc[r] = FA_LOAD(fv, o + (r0 + r) * d + c0) * FA_SPLAT(fv, alpha[r]);
                for (long j = 0; j < most; j++) {
                    const fv vx = FA_LOAD(fv, v + (j0 + j) * kv_stride + c0);
                    FA_UNROLL for (int r = 0; r < R; r++) acc[r] += FA_SPLAT(fv, sc[r * kb + j]) * vx;
                }
                FA_UNROLL for (int r = 0; r < R; r++) FA_STORE(o + (r0 + r) * d + c0, acc[r]);
            }
        }
    }

    // out = O / ℓ (rows that saw nothing: 0).
    for (long hh = 0; hh < group; hh++)
        for (long i = 0; i < rq; i++) {
            const long row = hh * rq + i;
            float z = 0;
            for (int l = 0; l < W; l++) z += run_sum[row * W + l];
            const float inv = z > 0 ? 1 / z : 0;
            float *dst = out + i * q_stride + hh * d;
            const float *src = o + row * d;
            for (long c = 0; c < d; c++) dst[c] = src[c] * inv;
        }
}
