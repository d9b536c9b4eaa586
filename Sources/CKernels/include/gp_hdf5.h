// libhdf5, loaded at run time (dlopen) the first time GreenPrune reads or writes an .h5 file.
//
// Linking libhdf5 would make every run load it and, on Debian, the ~40 libraries behind it
// (libcurl for its S3 driver, gnutls, krb5, ldap, ...): about 6 MB resident and tens of
// relocations per start, even for the commands that never touch HDF5. So the library holds
// only the calls it uses, as pointers resolved by gp_h5_load(). Types and constants are those
// of HDF5 1.10 and later (hid_t is 64-bit since 1.10); the test target, which links the real
// libhdf5 through the CHDF5 system-library target, checks every one against <hdf5.h>.
#ifndef GP_HDF5_H
#define GP_HDF5_H

#include <stddef.h>
#include <stdint.h>

typedef int64_t gp_hid_t;
typedef int gp_herr_t;
typedef int gp_htri_t;
typedef unsigned long long gp_hsize_t;

enum {
    GP_H5P_DEFAULT = 0,
    GP_H5S_ALL = 0,
    GP_H5S_SCALAR = 0,      // H5S_class_t
    GP_H5F_ACC_RDONLY = 0,
    GP_H5F_ACC_TRUNC = 2,
    GP_H5T_INTEGER = 0,     // H5T_class_t
    GP_H5T_FLOAT = 1,
    GP_H5I_GROUP = 2,       // H5I_type_t
    GP_H5I_DATASET = 5,
    GP_H5L_TYPE_HARD = 0,   // H5L_type_t
    GP_H5D_COMPACT = 0,     // H5D_layout_t
    GP_H5D_CONTIGUOUS = 1,
    GP_H5_INDEX_NAME = 0,   // H5_index_t
    GP_H5_ITER_INC = 0,     // H5_iter_order_t
};

/// H5G_info_t (the same from 1.10 on; the tests compare its size and `nlinks` offset).
typedef struct {
    int storage_type;
    gp_hsize_t nlinks;
    int64_t max_corder;
    unsigned mounted;
} gp_h5g_info_t;

/// Loads libhdf5 once (GREENPRUNE_HDF5 names the file, else the usual sonames are tried),
/// resolves every call below and silences HDF5's own error printing (per thread, in a
/// thread-safe build: every wrapper below does so for the thread calling it). Returns 1 on
/// success; on failure 0, with a one-line reason in `err`.
int gp_h5_load(char *err, size_t errlen);

/// The library's version as "1.10.8" (after a successful gp_h5_load), and the file it came from.
const char *gp_h5_version(void);
const char *gp_h5_library(void);

/// Native type ids (valid after gp_h5_load).
gp_hid_t gp_h5t_native_float(void);
gp_hid_t gp_h5t_native_double(void);
gp_hid_t gp_h5t_native_int32(void);
gp_hid_t gp_h5t_native_int64(void);
gp_hid_t gp_h5t_c_s1(void);

// The HDF5 calls GreenPrune makes, same arguments as H5<name>.
gp_hid_t gp_H5Fcreate(const char *name, unsigned flags, gp_hid_t fcpl, gp_hid_t fapl);
gp_hid_t gp_H5Fopen(const char *name, unsigned flags, gp_hid_t fapl);
gp_herr_t gp_H5Fclose(gp_hid_t file);
gp_hid_t gp_H5Oopen(gp_hid_t loc, const char *name, gp_hid_t lapl);
gp_herr_t gp_H5Oclose(gp_hid_t obj);
gp_hid_t gp_H5Tcopy(gp_hid_t type);
gp_herr_t gp_H5Tclose(gp_hid_t type);
gp_herr_t gp_H5Tset_size(gp_hid_t type, size_t size);
size_t gp_H5Tget_size(gp_hid_t type);
gp_hid_t gp_H5Screate(int cls);
gp_hid_t gp_H5Screate_simple(int rank, const gp_hsize_t *dims, const gp_hsize_t *maxdims);
gp_herr_t gp_H5Sclose(gp_hid_t space);
int gp_H5Sget_simple_extent_ndims(gp_hid_t space);
int gp_H5Sget_simple_extent_dims(gp_hid_t space, gp_hsize_t *dims, gp_hsize_t *maxdims);
gp_herr_t gp_H5Adelete(gp_hid_t loc, const char *name);
gp_hid_t gp_H5Acreate2(gp_hid_t loc, const char *name, gp_hid_t type, gp_hid_t space, gp_hid_t acpl, gp_hid_t aapl);
gp_herr_t gp_H5Awrite(gp_hid_t attr, gp_hid_t memtype, const void *buf);
gp_herr_t gp_H5Aclose(gp_hid_t attr);
gp_hid_t gp_H5Aopen(gp_hid_t obj, const char *name, gp_hid_t aapl);
gp_hid_t gp_H5Aget_type(gp_hid_t attr);
gp_herr_t gp_H5Aread(gp_hid_t attr, gp_hid_t memtype, void *buf);
gp_htri_t gp_H5Lexists(gp_hid_t loc, const char *name, gp_hid_t lapl);
gp_hid_t gp_H5Gcreate2(gp_hid_t loc, const char *name, gp_hid_t lcpl, gp_hid_t gcpl, gp_hid_t gapl);
gp_herr_t gp_H5Gclose(gp_hid_t group);
gp_hid_t gp_H5Dcreate2(gp_hid_t loc, const char *name, gp_hid_t type, gp_hid_t space, gp_hid_t lcpl, gp_hid_t dcpl, gp_hid_t dapl);
gp_herr_t gp_H5Dwrite(gp_hid_t dset, gp_hid_t memtype, gp_hid_t memspace, gp_hid_t filespace, gp_hid_t dxpl, const void *buf);
gp_herr_t gp_H5Dclose(gp_hid_t dset);
gp_hid_t gp_H5Dopen2(gp_hid_t loc, const char *name, gp_hid_t dapl);
gp_hid_t gp_H5Dget_space(gp_hid_t dset);
gp_herr_t gp_H5Dread(gp_hid_t dset, gp_hid_t memtype, gp_hid_t memspace, gp_hid_t filespace, gp_hid_t dxpl, void *buf);
gp_hid_t gp_H5Dget_type(gp_hid_t dset);
gp_hsize_t gp_H5Dget_storage_size(gp_hid_t dset);
gp_hid_t gp_H5Dget_create_plist(gp_hid_t dset);
int gp_H5Pget_layout(gp_hid_t dcpl);
int gp_H5Pget_external_count(gp_hid_t dcpl);
gp_herr_t gp_H5Pclose(gp_hid_t plist);
int gp_H5Tget_class(gp_hid_t type);
int gp_H5Iget_type(gp_hid_t id);
gp_herr_t gp_H5Gget_info(gp_hid_t group, gp_h5g_info_t *info);
long gp_H5Lget_name_by_idx(gp_hid_t loc, const char *group, int index_type, int order, gp_hsize_t n,
                           char *name, size_t size, gp_hid_t lapl);

/// The type of link `name` under `loc` (GP_H5L_TYPE_HARD, soft, external...), -1 on failure.
/// Wraps H5Lget_info, whose info struct changed in 1.12 after its first member.
int gp_H5Lget_type(gp_hid_t loc, const char *name);

#endif
