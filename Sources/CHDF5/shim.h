// libhdf5 (Debian: libhdf5-dev), linked by the tests only: they check GreenPrune's run-time
// loader (CKernels' gp_hdf5.h) against the real header and read its files back independently.
// The H5T_NATIVE_* and H5P_DEFAULT names are macros that Swift cannot import, so they are
// wrapped as inline functions here.
#include <stddef.h>
#include <hdf5.h>

static inline hid_t chdf5_native_float(void)  { return H5T_NATIVE_FLOAT; }
static inline hid_t chdf5_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t chdf5_native_int32(void)  { return H5T_NATIVE_INT32; }
static inline hid_t chdf5_native_int64(void)  { return H5T_NATIVE_INT64; }
static inline hid_t chdf5_c_s1(void)          { return H5T_C_S1; }
static inline hid_t chdf5_p_default(void)     { return H5P_DEFAULT; }
static inline hid_t chdf5_s_all(void)         { return H5S_ALL; }
static inline int chdf5_s_scalar(void)        { return (int)H5S_SCALAR; }
static inline unsigned chdf5_acc_trunc(void)  { return H5F_ACC_TRUNC; }
static inline unsigned chdf5_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline int chdf5_t_integer(void)       { return (int)H5T_INTEGER; }
static inline int chdf5_t_float(void)         { return (int)H5T_FLOAT; }
static inline int chdf5_i_group(void)         { return (int)H5I_GROUP; }
static inline int chdf5_i_dataset(void)       { return (int)H5I_DATASET; }
static inline int chdf5_l_type_hard(void)     { return (int)H5L_TYPE_HARD; }
static inline int chdf5_d_compact(void)       { return (int)H5D_COMPACT; }
static inline int chdf5_d_contiguous(void)    { return (int)H5D_CONTIGUOUS; }
static inline int chdf5_index_name(void)      { return (int)H5_INDEX_NAME; }
static inline int chdf5_iter_inc(void)        { return (int)H5_ITER_INC; }
static inline size_t chdf5_g_info_size(void)  { return sizeof(H5G_info_t); }
static inline size_t chdf5_g_info_nlinks_offset(void) { return offsetof(H5G_info_t, nlinks); }
