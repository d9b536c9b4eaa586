// The 8-lane float vector type, the target clones and the load/store helpers that CKernels'
// vector kernels share (vector_math.c, short_attention.c); private to this target.
#ifndef GREENPRUNE_VECTOR8_H
#define GREENPRUNE_VECTOR8_H
#include <stdint.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

// The middle clone is x86-64-v3 (AVX2 with FMA), not "avx2" alone: without FMA an AVX2 CPU would
// round a·b + c twice where the AVX-512 clone and the kernels built for "avx2,fma" (attention,
// RoPE) fuse it, so one quantity computed by two paths (a recomputed forward, a streamed head)
// would differ in its last bits on AVX2 machines only.
#if defined(__x86_64__) && defined(__clang__)
#define GPK_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
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
