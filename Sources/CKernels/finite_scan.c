// NaN/inf scan over raw float bytes: an element is non-finite exactly when all its exponent
// bits are set (IEEE 754 for f32/f16/f64; bf16 is the top half of an f32). Blocks of 1024
// elements are OR-reduced without branches so the compiler vectorises them; only a block
// with a hit is searched again for its first index.
#include "gp_finite.h"
#include <stdint.h>
#include <string.h>

#define GPK_SCAN_BLOCK 1024

#define GPK_SCAN(TYPE, MASK)                                                      \
    do {                                                                          \
        const unsigned char *p = (const unsigned char *)data;                     \
        for (long start = 0; start < n; start += GPK_SCAN_BLOCK) {                \
            long end = start + GPK_SCAN_BLOCK < n ? start + GPK_SCAN_BLOCK : n;   \
            int hit = 0;                                                          \
            for (long i = start; i < end; i++) {                                  \
                TYPE v;                                                           \
                memcpy(&v, p + i * (long)sizeof(TYPE), sizeof(TYPE));             \
                hit |= (v & (MASK)) == (MASK);                                    \
            }                                                                     \
            if (!hit) continue;                                                   \
            for (long i = start; i < end; i++) {                                  \
                TYPE v;                                                           \
                memcpy(&v, p + i * (long)sizeof(TYPE), sizeof(TYPE));             \
                if ((v & (MASK)) == (MASK)) return i;                             \
            }                                                                     \
        }                                                                         \
        return n;                                                                 \
    } while (0)

long gpk_first_nonfinite(const void *data, long n, int kind) {
    switch (kind) {
    case GPK_F32: GPK_SCAN(uint32_t, 0x7F800000u);
    case GPK_F16: GPK_SCAN(uint16_t, (uint16_t)0x7C00u);
    case GPK_BF16: GPK_SCAN(uint16_t, (uint16_t)0x7F80u);
    case GPK_F64: GPK_SCAN(uint64_t, 0x7FF0000000000000ull);
    default: return n;
    }
}
