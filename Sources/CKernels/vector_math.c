// Vectorised row kernels (see CKernels.h). Written with clang/gcc vector extensions so one
// source compiles to SSE2, AVX2 or AVX-512 code; target_clones picks the version at load time.
#include "CKernels.h"
#include "vector8.h"
#include "vector_exp.h"
#include <stdint.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#define vmax8(a, b) GPK_VMAX(v8, v8i, a, b)
#define vmin8(a, b) GPK_VMIN(v8, v8i, a, b)

// e^x on 8 lanes (vector_exp.h).
#define exp8(xin) GPK_EXP(v8, v8i, xin)

#define hsum(v) ({ v8 h_ = (v); ((h_[0] + h_[4]) + (h_[1] + h_[5])) + ((h_[2] + h_[6]) + (h_[3] + h_[7])); })

GPK_CLONES float gpk_exp(float x) { v8 e = exp8(splat(x)); return e[0]; }

GPK_CLONES float gpk_max(const float *x, long n) {
    long i = 0;
    float r = x[0];
    if (n >= 8) {
        v8 m = load8(x);
        for (i = 8; i + 8 <= n; i += 8) m = vmax8(m, load8(x + i));
        r = m[0];
        for (int j = 1; j < 8; j++) r = m[j] > r ? m[j] : r;
    }
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

GPK_CLONES float gpk_exp_shift_sum(float *out, const float *x, long n, float shift) {
    v8 acc = splat(0), sh = splat(shift);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        v8 e = exp8(load8(x + i) - sh);
        store8(out + i, e);
        acc += e;
    }
    float s = hsum(acc);
    for (; i < n; i++) { v8 e = exp8(splat(x[i] - shift)); out[i] = e[0]; s += e[0]; }
    return s;
}

GPK_CLONES float gpk_sum_exp_shift(const float *x, long n, float shift) {
    v8 a0 = splat(0), a1 = splat(0), sh = splat(shift);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 += exp8(load8(x + i) - sh);
        a1 += exp8(load8(x + i + 8) - sh);
    }
    for (; i + 8 <= n; i += 8) a0 += exp8(load8(x + i) - sh);
    float s = hsum(a0 + a1);
    for (; i < n; i++) { v8 e = exp8(splat(x[i] - shift)); s += e[0]; }
    return s;
}

GPK_CLONES void gpk_scale(float *x, long n, float a) {
    long i = 0;
    for (; i + 8 <= n; i += 8) store8(x + i, load8(x + i) * a);
    for (; i < n; i++) x[i] *= a;
}

GPK_CLONES void gpk_silu_mul(float *out, const float *gate, const float *up, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        v8 g = load8(gate + i);
        store8(out + i, g / (1.0f + exp8(-g)) * load8(up + i));
    }
    for (; i < n; i++) { float g = gate[i]; v8 e = exp8(splat(-g)); out[i] = g / (1.0f + e[0]) * up[i]; }
}

// erf on 8 lanes, for a = |z|: a·P(a²) below 1, 1 − e^(−a²)·R(1/a) from 1 to 4, and 1 beyond
// (erfc(4) is under half a float ulp of 1); the sign of z restored last. P fits erf(a)/a on
// [0, 1] and R fits erfc(a)·e^(a²) on [1, 4], both by least squares in relative error on
// Chebyshev nodes (degrees 5 and 7); evaluated in float32 they stay within about 1e-7 of erf.
#define erf8(zin) ({ \
    v8 ez_ = (zin); \
    v8i esign_ = (v8i)ez_ & (int32_t)0x80000000; \
    v8 ea_ = (v8)((v8i)ez_ & 0x7fffffff); \
    v8 es_ = ea_ * ea_; \
    v8 ep_ = splat(-5.667995428666472e-4f); \
    ep_ = ep_ * es_ + 4.927420057356358e-3f; \
    ep_ = ep_ * es_ - 2.6720894500613213e-2f; \
    ep_ = ep_ * es_ + 1.128057911992073e-1f; \
    ep_ = ep_ * es_ - 3.7612390518188477e-1f; \
    ep_ = ep_ * es_ + 1.1283791065216064f; \
    v8 enear_ = ea_ * ep_; \
    v8 eb_ = vmin8(ea_, splat(4.0f)); \
    v8 eu_ = 1.0f / vmax8(eb_, splat(1.0f)); \
    v8 er_ = splat(-1.694679632782936e-2f); \
    er_ = er_ * eu_ + 1.1689748615026474e-1f; \
    er_ = er_ * eu_ - 3.475888967514038e-1f; \
    er_ = er_ * eu_ + 5.694930553436279e-1f; \
    er_ = er_ * eu_ - 5.024152994155884e-1f; \
    er_ = er_ * eu_ + 4.987014830112457e-2f; \
    er_ = er_ * eu_ + 5.579383373260498e-1f; \
    er_ = er_ * eu_ + 3.356043016538024e-4f; \
    v8 efar_ = 1.0f - exp8(-(eb_ * eb_)) * er_; \
    v8i esmall_ = ea_ < 1.0f; \
    v8 ee_ = (v8)((esmall_ & (v8i)enear_) | (~esmall_ & (v8i)efar_)); \
    (v8)((v8i)ee_ | esign_); })

GPK_CLONES void gpk_gelu(float *out, const float *x, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        v8 v = load8(x + i);
        store8(out + i, 0.5f * v * (1.0f + erf8(v * 0.70710678118654752f)));
    }
    if (i < n) {
        float tail[8] = {0};
        memcpy(tail, x + i, (size_t)(n - i) * sizeof(float));
        v8 v = load8(tail);
        store8(tail, 0.5f * v * (1.0f + erf8(v * 0.70710678118654752f)));
        memcpy(out + i, tail, (size_t)(n - i) * sizeof(float));
    }
}

GPK_CLONES float gpk_erf(float z) { v8 e = erf8(splat(z)); return e[0]; }

GPK_CLONES long gpk_argmax(const float *x, long n) {
    // The maximum first (vectorised), then its first index.
    float m = gpk_max(x, n);
    for (long i = 0; i < n; i++) if (x[i] == m) return i;
    return 0;
}

// Dequantization of one weight row (compressed-tensors codes), 8 columns per step.
typedef int8_t v8c __attribute__((vector_size(8)));

GPK_CLONES void gpk_dequant_u4_row(float *out, const uint32_t *words, const float *scale, const float *offset,
                                   long n, long group) {
    typedef uint32_t v8u __attribute__((vector_size(32)));
    const v8u shifts = {0, 4, 8, 12, 16, 20, 24, 28};
    for (long g = 0, c0 = 0; c0 < n; g++, c0 += group) {
        const float s = scale[g], o = offset[g];
        for (long c = c0; c < c0 + group; c += 8) {
            v8u w = (v8u){0, 0, 0, 0, 0, 0, 0, 0} + words[c >> 3];
            v8 f = __builtin_convertvector((v8i)((w >> shifts) & 15), v8);
            store8(out + c, (f - o) * s);
        }
    }
}

GPK_CLONES void gpk_dequant_s8_row(float *out, const int8_t *q, const float *scale, const float *zero,
                                   long n, long group) {
    for (long g = 0, c0 = 0; c0 < n; g++, c0 += group) {
        const float s = scale[g], z = zero[g];
        for (long c = c0; c < c0 + group; c += 8) {
            v8c b;
            memcpy(&b, q + c, sizeof b);
            v8 f = __builtin_convertvector(__builtin_convertvector(b, v8i), v8);
            store8(out + c, (f - z) * s);
        }
    }
}

GPK_CLONES float gpk_rmsnorm_row(float *y, const float *x, const float *w, long n, float eps) {
    v8 a0 = splat(0), a1 = splat(0);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        v8 u = load8(x + i), v = load8(x + i + 8);
        a0 += u * u; a1 += v * v;
    }
    for (; i + 8 <= n; i += 8) { v8 u = load8(x + i); a0 += u * u; }
    float ss = hsum(a0 + a1);
    for (; i < n; i++) ss += x[i] * x[i];
    float r = 1.0f / __builtin_sqrtf(ss / (float)n + eps);
    v8 rv = splat(r);
    for (i = 0; i + 8 <= n; i += 8) store8(y + i, load8(x + i) * rv * load8(w + i));
    for (; i < n; i++) y[i] = x[i] * r * w[i];
    return r;
}

GPK_CLONES void gpk_add_layernorm_row(float *y, float *x, const float *r, const float *w, const float *b,
                                      long n, float eps) {
    long i = 0;
    if (r) {
        for (; i + 8 <= n; i += 8) store8(x + i, load8(x + i) + load8(r + i));
        for (; i < n; i++) x[i] += r[i];
    }
    v8 a0 = splat(0), a1 = splat(0);
    for (i = 0; i + 16 <= n; i += 16) { a0 += load8(x + i); a1 += load8(x + i + 8); }
    for (; i + 8 <= n; i += 8) a0 += load8(x + i);
    float sum = hsum(a0 + a1);
    for (; i < n; i++) sum += x[i];
    const float m = sum / (float)n;
    v8 mv = splat(m);
    a0 = splat(0); a1 = splat(0);
    for (i = 0; i + 16 <= n; i += 16) {
        v8 d0 = load8(x + i) - mv, d1 = load8(x + i + 8) - mv;
        a0 += d0 * d0; a1 += d1 * d1;
    }
    for (; i + 8 <= n; i += 8) { v8 d = load8(x + i) - mv; a0 += d * d; }
    float ss = hsum(a0 + a1);
    for (; i < n; i++) { float d = x[i] - m; ss += d * d; }
    const float rs = 1.0f / __builtin_sqrtf(ss / (float)n + eps);
    v8 rv = splat(rs);
    for (i = 0; i + 8 <= n; i += 8) store8(y + i, (load8(x + i) - mv) * rv * load8(w + i) + load8(b + i));
    for (; i < n; i++) y[i] = (x[i] - m) * rs * w[i] + b[i];
}

void gpk_release_free_heap(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

GPK_CLONES void gpk_bf16_to_f32(const unsigned short *src, float *dst, long n) {
    // bf16 is the top half of a float32: widening is a shift, exact for every value.
    for (long i = 0; i < n; i++) {
        uint32_t v = (uint32_t)src[i] << 16;
        memcpy(dst + i, &v, sizeof v);
    }
}

GPK_CLONES void gpk_f16_to_f32(const unsigned short *src, float *dst, long n) {
    for (long i = 0; i < n; i++) {
        _Float16 h;
        memcpy(&h, src + i, sizeof h);
        dst[i] = (float)h;
    }
}
