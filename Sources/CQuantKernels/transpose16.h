// The 16×16 transpose of 32-bit values that turns 16 weight rows into one VNNI block (AMX tiles,
// the AVX-512 BF16 and int16 dot-product kernels): shared by amx_bf16.c and int16_dot.c; and its
// 8×8 AVX2 form, four of which make the same block on CPUs without AVX-512 (int16_dot.c).
#ifndef GREENPRUNE_TRANSPOSE16_H
#define GREENPRUNE_TRANSPOSE16_H

#include <immintrin.h>
#include <stdint.h>

// tile[p·16 + c] = lane p of r[c]: the 16×16 transpose of 32-bit values (bf16 or int16 pairs), in three
// steps: 32-bit and 64-bit interleaves inside 128-bit lanes, then 128-bit lane shuffles.
__attribute__((target("avx512f")))
static inline void transpose16_store(const __m512i r[16], uint32_t *tile) {
    __m512i t[16], u[16];
    for (int k = 0; k < 8; k++) {
        // t[2k], t[2k+1]: rows 2k and 2k+1 interleaved (columns 4L, 4L+1 and 4L+2, 4L+3 of lane L).
        t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    for (int m = 0; m < 4; m++) {
        // u[4m + c], lane L: rows 4m..4m+3 of column 4L + c.
        u[4 * m] = _mm512_unpacklo_epi64(t[4 * m], t[4 * m + 2]);
        u[4 * m + 1] = _mm512_unpackhi_epi64(t[4 * m], t[4 * m + 2]);
        u[4 * m + 2] = _mm512_unpacklo_epi64(t[4 * m + 1], t[4 * m + 3]);
        u[4 * m + 3] = _mm512_unpackhi_epi64(t[4 * m + 1], t[4 * m + 3]);
    }
    for (int c = 0; c < 4; c++) {
        // Column 4L + c gathers lane L of u[c], u[4+c], u[8+c], u[12+c].
        const __m512i x0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), x1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xDD);
        const __m512i y0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88), y1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xDD);
        _mm512_storeu_si512((void *)(tile + (0 + c) * 16), _mm512_shuffle_i32x4(x0, y0, 0x88));
        _mm512_storeu_si512((void *)(tile + (4 + c) * 16), _mm512_shuffle_i32x4(x1, y1, 0x88));
        _mm512_storeu_si512((void *)(tile + (8 + c) * 16), _mm512_shuffle_i32x4(x0, y0, 0xDD));
        _mm512_storeu_si512((void *)(tile + (12 + c) * 16), _mm512_shuffle_i32x4(x1, y1, 0xDD));
    }
}

// dst[16·p + c] = lane p of r[c] for p, c < 8: the 8×8 transpose of 32-bit values (int16 pairs)
// in three steps, 32-bit and 64-bit interleaves inside 128-bit lanes, then 128-bit lane swaps.
__attribute__((target("avx2")))
static inline void transpose8_store(const __m256i r[8], uint32_t *dst) {
    __m256i t[8], u[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    for (int h = 0; h < 2; h++) {
        // u[4h + c], lane L: rows 4h..4h+3 of column 4L + c.
        u[4 * h] = _mm256_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
        u[4 * h + 1] = _mm256_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
        u[4 * h + 2] = _mm256_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
        u[4 * h + 3] = _mm256_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
    }
    for (int c = 0; c < 4; c++) {
        _mm256_storeu_si256((__m256i *)(dst + 16 * c), _mm256_permute2x128_si256(u[c], u[4 + c], 0x20));
        _mm256_storeu_si256((__m256i *)(dst + 16 * (c + 4)), _mm256_permute2x128_si256(u[c], u[4 + c], 0x31));
    }
}

#endif
