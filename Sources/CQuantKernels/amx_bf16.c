// bf16 matrix products on Intel AMX tiles, for quantized weights run with float activations.
//
// A tile register holds up to 16 rows of 64 bytes. TDPBF16PS multiplies a 16×32 bf16 tile of A
// by a "VNNI" B tile (16 rows, each holding 16 columns × 2 consecutive k values) and adds the
// 16×16 float32 products into C. The kernel keeps four C tiles (a 32×32 block of the output),
// two A tiles and two B tiles, and walks K 32 values at a time.
//
// Layouts (shared with the Swift caller, see CQuantKernels.h):
// - A: (Mp, Kp) bf16 row-major, Mp = M rounded up to 32, Kp = K rounded up to 32, padding zero.
// - B: (Np/16) column blocks, each (Kp/32) tiles of 16×32 bf16 (1 KB): tile t of block j holds
//   B[t·16 + r][2c + e] = W[16j + c][32t + 2r + e], W the (N, K) weight; Np = N rounded up to 32.
// Values are rounded to bf16 to nearest, ties to even; products accumulate in float32.
#include "CQuantKernels.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#define QK_AMX 1
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "transpose16.h"
#endif

uint16_t qk_bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#ifdef QK_AMX
// Linux (5.16+) hands out the 8 KB tile-data state only on request: arch_prctl
// ARCH_REQ_XCOMP_PERM with XFEATURE_XTILEDATA (18). The permission is process-wide.
#define QK_ARCH_REQ_XCOMP_PERM 0x1023
#define QK_XFEATURE_XTILEDATA 18

static int amx_probe(void) {
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16")) return 0;
    unsigned int a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    const unsigned int amx_bf16 = 1u << 22, amx_tile = 1u << 24;
    if ((d & amx_bf16) == 0 || (d & amx_tile) == 0) return 0;
    return syscall(SYS_arch_prctl, QK_ARCH_REQ_XCOMP_PERM, QK_XFEATURE_XTILEDATA) == 0 ? 1 : 0;
}
#endif

int qk_amx_bf16_available(void) {
#ifdef QK_AMX
    static int state = -1;
    if (state < 0) state = amx_probe();
    return state;
#else
    return 0;
#endif
}

static inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

#ifdef QK_AMX
__attribute__((target("avx512f,avx512bf16,avx512vl")))
static void pack_row_avx512(const float *r, int64_t K, uint16_t *o, int64_t Kp) {
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(r + k + 16), _mm512_loadu_ps(r + k));
        _mm512_storeu_si512((void *)(o + k), (__m512i)v);
    }
    for (; k < K; k++) o[k] = qk_bf16_round(r[k]);
    for (; k < Kp; k++) o[k] = 0;
}
#endif

static void pack_row(const float *r, int64_t K, uint16_t *o, int64_t Kp) {
#ifdef QK_AMX
    if (qk_avx512_bf16_available()) { pack_row_avx512(r, K, o, Kp); return; }
#endif
    int64_t k = 0;
    for (; k < K; k++) o[k] = qk_bf16_round(r[k]);
    for (; k < Kp; k++) o[k] = 0;
}

void qk_amx_pack_a(int64_t m0, int64_t m1, int64_t M, int64_t K, const float *x, int64_t ldx, uint16_t *a) {
    const int64_t Kp = round_up(K, 32);
    for (int64_t m = m0; m < m1; m++) {
        if (m < M) pack_row(x + m * ldx, K, a + m * Kp, Kp);
        else memset(a + m * Kp, 0, (size_t)Kp * 2);
    }
}

#ifdef QK_AMX
__attribute__((target("avx512f")))
static void transpose_rows(uint16_t *const row[16], int64_t kb, uint16_t *tiles) {
    for (int64_t t = 0; t < kb; t++) {
        __m512i v[16];
        for (int c = 0; c < 16; c++) v[c] = _mm512_loadu_si512((const void *)(row[c] + 32 * t));
        transpose16_store(v, (uint32_t *)(tiles + t * 512));
    }
}

__attribute__((target("avx512f,avx512bw,avx512bf16,avx512vl")))
static void pack_q_avx512(int64_t rows, int64_t K, int bits, const uint8_t *data, int64_t row_bytes, const float *scale,
                          const float *offset, int64_t gpr, int64_t group, uint16_t *tiles) {
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (int64_t t = 0; t < K / 32; t++) {
        const int64_t k0 = 32 * t;
        __m512i v[16];
        for (int64_t r = 0; r < 16; r++) {
            if (r >= rows) { v[r] = _mm512_setzero_si512(); continue; }
            __m512 lo, hi;  // values k0..k0+15 and k0+16..k0+31 of row r
            if (bits == 4) {
                // Byte i holds value 2i in its low nibble and 2i+1 in its high nibble.
                const __m128i b = _mm_loadu_si128((const __m128i *)(data + r * row_bytes + k0 / 2));
                const __m128i ln = _mm_and_si128(b, low4), hn = _mm_and_si128(_mm_srli_epi16(b, 4), low4);
                lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(ln, hn)));
                hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpackhi_epi8(ln, hn)));
            } else {
                const int8_t *q = (const int8_t *)(data + r * row_bytes + k0);
                lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q)));
                hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + 16))));
            }
            const int64_t g0 = r * gpr + k0 / group, g1 = r * gpr + (k0 + 16) / group;
            lo = _mm512_sub_ps(lo, _mm512_set1_ps(offset[g0]));
            hi = _mm512_sub_ps(hi, _mm512_set1_ps(offset[g1]));
            if (scale) {
                lo = _mm512_mul_ps(lo, _mm512_set1_ps(scale[g0]));
                hi = _mm512_mul_ps(hi, _mm512_set1_ps(scale[g1]));
            }
            v[r] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
        }
        transpose16_store(v, (uint32_t *)(tiles + t * 512));
    }
}
#endif

int qk_amx_pack_q(int64_t rows, int64_t K, int bits, const void *data, int64_t row_bytes, const float *scale,
                  const float *offset, int64_t gpr, int64_t group, uint16_t *tiles) {
#ifdef QK_AMX
    if (!qk_avx512_bf16_available() || (bits != 4 && bits != 8) || rows < 0 || rows > 16 || K <= 0 || K % 32 != 0 ||
        group <= 0 || group % 16 != 0 || K % group != 0 || gpr != K / group)
        return -1;
    pack_q_avx512(rows, K, bits, (const uint8_t *)data, row_bytes, scale, offset, gpr, group, tiles);
    return 0;
#else
    (void)rows; (void)K; (void)bits; (void)data; (void)row_bytes; (void)scale; (void)offset; (void)gpr; (void)group;
    (void)tiles;
    return -1;
#endif
}

int qk_amx_pack_b16(int64_t rows, int64_t K, const float *w, int64_t ldw, uint16_t *tiles) {
    const int64_t Kp = round_up(K, 32), kb = Kp / 32;
    // Rows to bf16 first (row r as Kp/2 pairs), then a 16×16 transpose of 32-bit pairs per tile.
    uint16_t *rowbuf = malloc((size_t)(16 * Kp) * sizeof(uint16_t));
    if (!rowbuf) return -1;
    uint16_t *row[16];
    for (int64_t r = 0; r < 16; r++) {
        row[r] = rowbuf + r * Kp;
        if (r < rows) pack_row(w + r * ldw, K, row[r], Kp);
        else memset(row[r], 0, (size_t)Kp * 2);
    }
#ifdef QK_AMX
    if (qk_avx512_bf16_available()) {
        transpose_rows(row, kb, tiles);
        free(rowbuf);
        return 0;
    }
#endif
    for (int64_t t = 0; t < kb; t++) {
        uint32_t *tile = (uint32_t *)(tiles + t * 512);
        for (int64_t p = 0; p < 16; p++)
            for (int64_t c = 0; c < 16; c++) {
                uint32_t pair;
                memcpy(&pair, row[c] + 32 * t + 2 * p, 4);
                tile[p * 16 + c] = pair;
            }
    }
    free(rowbuf);
    return 0;
}

#ifdef QK_AMX
typedef struct {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) qk_tilecfg;

// Writes a 16×16 float tile (row stride 16) into C rows [0, rows), columns [0, cols), scaling
// column c by scale[c] when scale is non-NULL, and adding C's old value when accumulate is set.
__attribute__((target("avx512f")))
static inline void store_block(const float *t, int64_t rows, int64_t cols, const float *scale, int accumulate,
                               float *c, int64_t ldc) {
    if (cols == 16) {
        const __m512 s = scale ? _mm512_loadu_ps(scale) : _mm512_set1_ps(1);
        for (int64_t i = 0; i < rows; i++) {
            __m512 v = _mm512_mul_ps(_mm512_loadu_ps(t + i * 16), s);
            if (accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(c + i * ldc));
            _mm512_storeu_ps(c + i * ldc, v);
        }
        return;
    }
    for (int64_t i = 0; i < rows; i++) {
        const float *s = t + i * 16;
        float *o = c + i * ldc;
        for (int64_t j = 0; j < cols; j++) {
            const float v = scale ? s[j] * scale[j] : s[j];
            o[j] = accumulate ? o[j] + v : v;
        }
    }
}

__attribute__((target("amx-tile,amx-bf16,avx512f")))
static void gemm_amx(int64_t M, int64_t N, int64_t K, int64_t n0, int64_t n1, const uint16_t *a, const uint16_t *b,
                     const float *col_scale, int accumulate, float *c, int64_t ldc) {
    const int64_t Kp = round_up(K, 32), kb = Kp / 32, Mp = round_up(M, 32);
    qk_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int i = 0; i < 8; i++) { cfg.rows[i] = 16; cfg.colsb[i] = 64; }
    _tile_loadconfig(&cfg);
    float tmp[4][256] __attribute__((aligned(64)));
    // Column chunks of 256 keep a chunk's B tiles (256·Kp·2 bytes) in L2 while A streams by.
    for (int64_t nc = n0; nc < n1; nc += 256) {
        const int64_t nce = nc + 256 < n1 ? nc + 256 : n1;
        for (int64_t m = 0; m < Mp; m += 32) {
            const uint16_t *a0 = a + m * Kp, *a1 = a0 + 16 * Kp;
            for (int64_t n = nc; n < nce; n += 32) {
                const uint16_t *b0 = b + (n / 16) * kb * 512, *b1 = b0 + kb * 512;
                _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
                for (int64_t t = 0; t < kb; t++) {
                    _tile_loadd(4, a0 + t * 32, Kp * 2);
                    _tile_loadd(5, a1 + t * 32, Kp * 2);
                    _tile_loadd(6, b0 + t * 512, 64);
                    _tile_loadd(7, b1 + t * 512, 64);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_dpbf16ps(1, 4, 7);
                    _tile_dpbf16ps(2, 5, 6);
                    _tile_dpbf16ps(3, 5, 7);
                }
                const int64_t rows0 = M - m < 16 ? M - m : 16, rows1 = M - m - 16 < 16 ? M - m - 16 : 16;
                const int64_t cols0 = N - n < 16 ? N - n : 16, cols1 = N - n - 16 < 16 ? N - n - 16 : 16;
                if (!col_scale && !accumulate && rows0 == 16 && rows1 == 16 && cols0 == 16 && cols1 == 16) {
                    _tile_stored(0, c + m * ldc + n, ldc * 4);
                    _tile_stored(1, c + m * ldc + n + 16, ldc * 4);
                    _tile_stored(2, c + (m + 16) * ldc + n, ldc * 4);
                    _tile_stored(3, c + (m + 16) * ldc + n + 16, ldc * 4);
                    continue;
                }
                _tile_stored(0, tmp[0], 64);
                _tile_stored(1, tmp[1], 64);
                _tile_stored(2, tmp[2], 64);
                _tile_stored(3, tmp[3], 64);
                const float *s0 = col_scale ? col_scale + n : NULL, *s1 = col_scale ? col_scale + n + 16 : NULL;
                if (rows0 > 0 && cols0 > 0) store_block(tmp[0], rows0, cols0, s0, accumulate, c + m * ldc + n, ldc);
                if (rows0 > 0 && cols1 > 0) store_block(tmp[1], rows0, cols1, s1, accumulate, c + m * ldc + n + 16, ldc);
                if (rows1 > 0 && cols0 > 0) store_block(tmp[2], rows1, cols0, s0, accumulate, c + (m + 16) * ldc + n, ldc);
                if (rows1 > 0 && cols1 > 0) store_block(tmp[3], rows1, cols1, s1, accumulate, c + (m + 16) * ldc + n + 16, ldc);
            }
        }
    }
    _tile_release();
}
#endif

int qk_amx_bf16_gemm(int64_t M, int64_t N, int64_t K, int64_t n0, int64_t n1, const uint16_t *a, const uint16_t *b,
                     const float *col_scale, int accumulate, float *c, int64_t ldc) {
    if (n0 % 32 != 0 || n0 < 0 || n1 > N || (n1 != N && n1 % 32 != 0) || n0 >= n1) return n0 == n1 ? 0 : -1;
#ifdef QK_AMX
    if (!qk_amx_bf16_available()) return -1;
    gemm_amx(M, N, K, n0, n1, a, b, col_scale, accumulate, c, ldc);
    return 0;
#else
    (void)M; (void)K; (void)a; (void)b; (void)col_scale; (void)accumulate; (void)c; (void)ldc;
    return -1;
#endif
}
