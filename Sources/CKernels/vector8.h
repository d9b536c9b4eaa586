// The 8-lane float vector type, the target clones and the load/store helpers that CKernels'
// vector kernels share (vector_math.c, short_attention.c); private to this target.
#ifndef GREENPRUNE_VECTOR8_H
#define GREENPRUNE_VECTOR8_H
#include <stdint.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

#if defined(__x86_64__) && defined(__clang__)
#define GPK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define GPK_CLONES
#endif

// Helpers are macros (GNU statement expressions), not functions: a function taking or
// returning a 32-byte vector has a different ABI with and without AVX, which clang rejects
// inside the baseline clone.
#define load8(p) ({ v8 v_; memcpy(&v_, (p), sizeof v_); v_; })
#define store8(p, v) do { v8 s_ = (v); memcpy((p), &s_, sizeof s_); } while (0)
#define splat(a) ((v8){(a), (a), (a), (a), (a), (a), (a), (a)})
#endif
