// Lane-wise max, min and eˣ on clang/gcc vector types of any width (T float lanes, TI the
// int32 vector of the same size), shared by vector_math.c and flash_attention.c. Macros (GNU
// statement expressions), not functions: a function taking or returning a vector would change
// ABI between a file's AVX-512, AVX2 and baseline versions.
#ifndef GREENPRUNE_VECTOR_EXP_H
#define GREENPRUNE_VECTOR_EXP_H

// x − 0 is x for every x (−0 included), so this folds to a broadcast; 0 + x would not.
#define GPK_SPLAT(T, a) ((float)(a) - (T){0})
#define GPK_VMAX(T, TI, a, b) ({ T a_ = (a), b_ = (b); TI m_ = a_ > b_; (T)((m_ & (TI)a_) | (~m_ & (TI)b_)); })
#define GPK_VMIN(T, TI, a, b) ({ T a_ = (a), b_ = (b); TI m_ = a_ < b_; (T)((m_ & (TI)a_) | (~m_ & (TI)b_)); })

// eˣ: x = n·ln2 + r, |r| <= ln2/2; e^r by the Cephes expf polynomial (~1 ulp); 2^n built in the
// exponent bits. n is rounded with the 1.5·2^23 trick: after adding it the integer sits in the
// low mantissa bits. x is clamped to [-87.3, 88.3] so 2^n stays normal.
#define GPK_EXP(T, TI, xin) ({ \
    T x_ = GPK_VMIN(T, TI, GPK_VMAX(T, TI, (xin), GPK_SPLAT(T, -87.3f)), GPK_SPLAT(T, 88.3f)); \
    T sh_ = x_ * 1.44269504088896341f + 12582912.0f; \
    T n_ = sh_ - 12582912.0f; \
    x_ = x_ - n_ * 0.693359375f; \
    x_ = x_ + n_ * 2.12194440e-4f; \
    T z_ = x_ * x_; \
    T p_ = GPK_SPLAT(T, 1.9875691500e-4f); \
    p_ = p_ * x_ + 1.3981999507e-3f; \
    p_ = p_ * x_ + 8.3334519073e-3f; \
    p_ = p_ * x_ + 4.1665795894e-2f; \
    p_ = p_ * x_ + 1.6666665459e-1f; \
    p_ = p_ * x_ + 5.0000001201e-1f; \
    p_ = p_ * z_ + x_ + 1.0f; \
    TI bits_ = (((TI)sh_ - 0x4B400000) + 127) << 23; \
    p_ * (T)bits_; })

#endif
