// libhdf5 (Debian: libhdf5-dev). The H5T_NATIVE_* and H5P_DEFAULT names are macros that Swift
// cannot import, so they are wrapped as inline functions here.
#include <hdf5.h>

static inline hid_t gp_h5t_native_float(void)  { return H5T_NATIVE_FLOAT; }
static inline hid_t gp_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t gp_h5t_native_int32(void)  { return H5T_NATIVE_INT32; }
static inline hid_t gp_h5t_native_int64(void)  { return H5T_NATIVE_INT64; }
static inline hid_t gp_h5t_native_uint8(void)  { return H5T_NATIVE_UINT8; }
static inline hid_t gp_h5t_c_s1(void)          { return H5T_C_S1; }
static inline hid_t gp_h5p_default(void)       { return H5P_DEFAULT; }
static inline hid_t gp_h5s_all(void)           { return H5S_ALL; }
static inline unsigned gp_h5f_acc_trunc(void)  { return H5F_ACC_TRUNC; }
static inline unsigned gp_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline hid_t gp_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
/// Silences libhdf5's own stderr error stack; GreenPrune reports errors itself.
static inline void gp_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
