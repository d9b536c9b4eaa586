// A scan for NaN and infinities in raw tensor bytes, run on every float tensor a model
// directory holds before the weights are used. Compiled at -O2 even in debug builds, so the
// check costs a memory pass, not a debug-Swift loop.
#ifndef GREENPRUNE_GP_FINITE_H
#define GREENPRUNE_GP_FINITE_H

#ifdef __cplusplus
extern "C" {
#endif

/// Element encodings gpk_first_nonfinite understands.
enum gpk_float_kind { GPK_F32 = 0, GPK_F16 = 1, GPK_BF16 = 2, GPK_F64 = 3 };

/// Index of the first NaN or ±inf among the n elements at data (any alignment), or n when
/// every element is finite. kind is a gpk_float_kind; an unknown kind returns n.
long gpk_first_nonfinite(const void *data, long n, int kind);

#ifdef __cplusplus
}
#endif

#endif
