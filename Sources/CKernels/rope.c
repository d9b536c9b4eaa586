// Rotary position embedding on one token's heads (see CKernels.h), 8 columns per step.
#include "CKernels.h"
#include "vector8.h"

// No products fused into FMAs: every clone, and the scalar tail, rounds x1·c − x2·s as two
// products and a difference, so each version equals the plain formula bit for bit.
#pragma STDC FP_CONTRACT OFF

GPK_CLONES void gpk_rope_row(float *x, const float *cos, const float *sin, long heads, long d) {
    const long half = d / 2;
    for (long h = 0; h < heads; h++) {
        float *lo = x + h * d, *hi = lo + half;
        long i = 0;
        for (; i + 8 <= half; i += 8) {
            v8 x1 = load8(lo + i), x2 = load8(hi + i), c = load8(cos + i), s = load8(sin + i);
            store8(lo + i, x1 * c - x2 * s);
            store8(hi + i, x2 * c + x1 * s);
        }
        for (; i < half; i++) {
            const float x1 = lo[i], x2 = hi[i];
            lo[i] = x1 * cos[i] - x2 * sin[i];
            hi[i] = x2 * cos[i] + x1 * sin[i];
        }
    }
}
