// Attention of one (sequence, head) over a short window, without masks beyond the sequence's
// length (an encoder's): the scores of a query row fit in a few vector registers, so the
// products run as direct loops instead of two tiny sgemm calls per head (see gp_attention.h).
#include "CKernels.h"
#include "vector8.h"
#include <stdint.h>
#include <string.h>

GPK_CLONES int gpk_short_attention(float *out, long ldo, const float *q, long ldq, const float *k, const float *v,
                                   long ldkv, const float *bias, long ldb, long t, long valid, long d, float scale,
                                   float *scratch) {
    if (t < 1 || valid < 1 || valid > GPK_SHORT_ATTENTION_MAX_KEYS || d < 8 || d % 8 != 0 || d > GPK_SHORT_ATTENTION_MAX_DIM)
        return -1;
    const long jp = (valid + 7) / 8 * 8, nb = jp / 8, db = d / 8;
    // Keys transposed, (d, jp): one query's scores are then d broadcast multiply-adds over
    // vectors of 8 keys. Columns past `valid` are zero and masked below.
    float *kt = scratch, *s = scratch + d * jp;
    for (long c = 0; c < d; c++) {
        float *row = kt + c * jp;
        for (long j = 0; j < valid; j++) row[j] = k[j * ldkv + c];
        for (long j = valid; j < jp; j++) row[j] = 0;
    }
    for (long i = 0; i < t; i++) {
        const float *qi = q + i * ldq;
        v8 acc[GPK_SHORT_ATTENTION_MAX_KEYS / 8];
        for (long b = 0; b < nb; b++) acc[b] = splat(0);
        for (long c = 0; c < d; c++) {
            const v8 qc = splat(qi[c] * scale);
            const float *kr = kt + c * jp;
            for (long b = 0; b < nb; b++) acc[b] += qc * load8(kr + 8 * b);
        }
        for (long b = 0; b < nb; b++) store8(s + 8 * b, acc[b]);
        if (bias) { const float *br = bias + i * ldb; for (long j = 0; j < valid; j++) s[j] += br[j]; }
        const float inv = 1.0f / gpk_exp_shift_sum(s, s, valid, gpk_max(s, valid));
        v8 o[GPK_SHORT_ATTENTION_MAX_DIM / 8];
        for (long b = 0; b < db; b++) o[b] = splat(0);
        for (long j = 0; j < valid; j++) {
            const v8 pj = splat(s[j]);
            const float *vj = v + j * ldkv;
            for (long b = 0; b < db; b++) o[b] += pj * load8(vj + 8 * b);
        }
        float *oi = out + i * ldo;
        for (long b = 0; b < db; b++) store8(oi + 8 * b, o[b] * inv);
    }
    return 0;
}
