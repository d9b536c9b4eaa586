// libhdf5 resolved with dlopen/dlsym; see include/gp_hdf5.h.
#define _GNU_SOURCE
#include "gp_hdf5.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// One pointer per call; the X-macro keeps the names, the table and the lookups in step.
#define GP_H5_CALLS(X) \
    X(gp_herr_t, H5open, (void)) \
    X(gp_herr_t, H5get_libversion, (unsigned *, unsigned *, unsigned *)) \
    X(gp_herr_t, H5Eset_auto2, (gp_hid_t, void *, void *)) \
    X(gp_hid_t, H5Fcreate, (const char *, unsigned, gp_hid_t, gp_hid_t)) \
    X(gp_hid_t, H5Fopen, (const char *, unsigned, gp_hid_t)) \
    X(gp_herr_t, H5Fclose, (gp_hid_t)) \
    X(gp_hid_t, H5Oopen, (gp_hid_t, const char *, gp_hid_t)) \
    X(gp_herr_t, H5Oclose, (gp_hid_t)) \
    X(gp_hid_t, H5Tcopy, (gp_hid_t)) \
    X(gp_herr_t, H5Tclose, (gp_hid_t)) \
    X(gp_herr_t, H5Tset_size, (gp_hid_t, size_t)) \
    X(size_t, H5Tget_size, (gp_hid_t)) \
    X(gp_hid_t, H5Screate, (int)) \
    X(gp_hid_t, H5Screate_simple, (int, const gp_hsize_t *, const gp_hsize_t *)) \
    X(gp_herr_t, H5Sclose, (gp_hid_t)) \
    X(int, H5Sget_simple_extent_ndims, (gp_hid_t)) \
    X(int, H5Sget_simple_extent_dims, (gp_hid_t, gp_hsize_t *, gp_hsize_t *)) \
    X(gp_herr_t, H5Adelete, (gp_hid_t, const char *)) \
    X(gp_hid_t, H5Acreate2, (gp_hid_t, const char *, gp_hid_t, gp_hid_t, gp_hid_t, gp_hid_t)) \
    X(gp_herr_t, H5Awrite, (gp_hid_t, gp_hid_t, const void *)) \
    X(gp_herr_t, H5Aclose, (gp_hid_t)) \
    X(gp_hid_t, H5Aopen, (gp_hid_t, const char *, gp_hid_t)) \
    X(gp_hid_t, H5Aget_type, (gp_hid_t)) \
    X(gp_herr_t, H5Aread, (gp_hid_t, gp_hid_t, void *)) \
    X(gp_htri_t, H5Lexists, (gp_hid_t, const char *, gp_hid_t)) \
    X(gp_hid_t, H5Gcreate2, (gp_hid_t, const char *, gp_hid_t, gp_hid_t, gp_hid_t)) \
    X(gp_herr_t, H5Gclose, (gp_hid_t)) \
    X(gp_hid_t, H5Dcreate2, (gp_hid_t, const char *, gp_hid_t, gp_hid_t, gp_hid_t, gp_hid_t, gp_hid_t)) \
    X(gp_herr_t, H5Dwrite, (gp_hid_t, gp_hid_t, gp_hid_t, gp_hid_t, gp_hid_t, const void *)) \
    X(gp_herr_t, H5Dclose, (gp_hid_t)) \
    X(gp_hid_t, H5Dopen2, (gp_hid_t, const char *, gp_hid_t)) \
    X(gp_hid_t, H5Dget_space, (gp_hid_t)) \
    X(gp_herr_t, H5Dread, (gp_hid_t, gp_hid_t, gp_hid_t, gp_hid_t, gp_hid_t, void *)) \
    X(gp_hid_t, H5Dget_type, (gp_hid_t)) \
    X(gp_hsize_t, H5Dget_storage_size, (gp_hid_t)) \
    X(gp_hid_t, H5Dget_create_plist, (gp_hid_t)) \
    X(int, H5Pget_layout, (gp_hid_t)) \
    X(int, H5Pget_external_count, (gp_hid_t)) \
    X(gp_herr_t, H5Pclose, (gp_hid_t)) \
    X(int, H5Tget_class, (gp_hid_t)) \
    X(int, H5Iget_type, (gp_hid_t)) \
    X(gp_herr_t, H5Gget_info, (gp_hid_t, gp_h5g_info_t *)) \
    X(long, H5Lget_name_by_idx, (gp_hid_t, const char *, int, int, gp_hsize_t, char *, size_t, gp_hid_t))

// Calls whose symbol was renamed when HDF5 1.12 versioned them: the 1.12+ name is tried first,
// then 1.10's. Only arguments whose layout both versions share are used (see gp_H5Lget_type).
#define GP_H5_VERSIONED_CALLS(X) \
    X(gp_herr_t, H5Lget_info, "H5Lget_info2", "H5Lget_info", (gp_hid_t, const char *, void *, gp_hid_t))

// The library's global type ids (what H5T_NATIVE_FLOAT and friends expand to after H5open).
#define GP_H5_GLOBALS(X) \
    X(H5T_NATIVE_FLOAT_g) X(H5T_NATIVE_DOUBLE_g) X(H5T_NATIVE_INT32_g) X(H5T_NATIVE_INT64_g) X(H5T_C_S1_g)

static struct {
#define GP_FIELD(ret, name, args) ret (*name) args;
    GP_H5_CALLS(GP_FIELD)
#undef GP_FIELD
#define GP_VFIELD(ret, name, newer, older, args) ret (*name) args;
    GP_H5_VERSIONED_CALLS(GP_VFIELD)
#undef GP_VFIELD
#define GP_GLOBAL(name) const gp_hid_t *name;
    GP_H5_GLOBALS(GP_GLOBAL)
#undef GP_GLOBAL
} h5;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;
static char failure[512];
static char version[32];
static char library[256];

static void load(void) {
    // Debian/Ubuntu name the serial build libhdf5_serial; other systems plain libhdf5 (1.10:
    // .so.103, 1.12: .so.200, 1.14: .so.310).
    static const char *names[] = {
        "libhdf5_serial.so.103", "libhdf5.so.310", "libhdf5.so.200", "libhdf5.so.103",
        "libhdf5_serial.so", "libhdf5.so", NULL,
    };
    const char *env = getenv("GREENPRUNE_HDF5");
    void *lib = NULL;
    if (env && *env) {
        lib = dlopen(env, RTLD_NOW | RTLD_LOCAL);
        if (!lib) { snprintf(failure, sizeof failure, "GREENPRUNE_HDF5=%s cannot be loaded: %s", env, dlerror()); return; }
        snprintf(library, sizeof library, "%s", env);
    } else {
        for (int i = 0; names[i] && !lib; i++) {
            lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
            if (lib) snprintf(library, sizeof library, "%s", names[i]);
        }
        if (!lib) {
            snprintf(failure, sizeof failure,
                     "libhdf5 (1.10 or later) is not installed: install libhdf5-103-1 (Debian) or set GREENPRUNE_HDF5 to the library file");
            return;
        }
    }
#define GP_RESOLVE(ret, name, args) \
    if (!(*(void **)&h5.name = dlsym(lib, #name))) { \
        snprintf(failure, sizeof failure, "%s has no %s (HDF5 1.10 or later is needed)", library, #name); return; }
    GP_H5_CALLS(GP_RESOLVE)
#undef GP_RESOLVE
#define GP_RESOLVE_VERSIONED(ret, name, newer, older, args) \
    if (!(*(void **)&h5.name = dlsym(lib, newer)) && !(*(void **)&h5.name = dlsym(lib, older))) { \
        snprintf(failure, sizeof failure, "%s has neither %s nor %s (HDF5 1.10 or later is needed)", library, newer, older); return; }
    GP_H5_VERSIONED_CALLS(GP_RESOLVE_VERSIONED)
#undef GP_RESOLVE_VERSIONED
#define GP_RESOLVE_GLOBAL(name) \
    if (!(h5.name = (const gp_hid_t *)dlsym(lib, #name))) { \
        snprintf(failure, sizeof failure, "%s has no %s (HDF5 1.10 or later is needed)", library, #name); return; }
    GP_H5_GLOBALS(GP_RESOLVE_GLOBAL)
#undef GP_RESOLVE_GLOBAL
    unsigned maj = 0, min = 0, rel = 0;
    if (h5.H5open() < 0 || h5.H5get_libversion(&maj, &min, &rel) < 0) {
        snprintf(failure, sizeof failure, "%s failed to initialise", library); return;
    }
    if (maj != 1 || min < 10) {  // hid_t was 32-bit before 1.10
        snprintf(failure, sizeof failure, "%s is HDF5 %u.%u.%u; 1.10 or later is needed", library, maj, min, rel); return;
    }
    snprintf(version, sizeof version, "%u.%u.%u", maj, min, rel);
    loaded = 1;
}

// GreenPrune reports errors itself, so libhdf5's printing of its error stack is switched off.
// A thread-safe build (Debian's) keeps that setting per thread, so each thread switches it off
// before its first call.
static void quiet(void) {
    static __thread int done;
    if (!done) { h5.H5Eset_auto2(0 /* H5E_DEFAULT */, NULL, NULL); done = 1; }
}

int gp_h5_load(char *err, size_t errlen) {
    pthread_once(&once, load);
    if (!loaded && err && errlen) snprintf(err, errlen, "%s", failure);
    if (loaded) quiet();
    return loaded;
}

const char *gp_h5_version(void) { return version; }
const char *gp_h5_library(void) { return library; }

gp_hid_t gp_h5t_native_float(void) { return *h5.H5T_NATIVE_FLOAT_g; }
gp_hid_t gp_h5t_native_double(void) { return *h5.H5T_NATIVE_DOUBLE_g; }
gp_hid_t gp_h5t_native_int32(void) { return *h5.H5T_NATIVE_INT32_g; }
gp_hid_t gp_h5t_native_int64(void) { return *h5.H5T_NATIVE_INT64_g; }
gp_hid_t gp_h5t_c_s1(void) { return *h5.H5T_C_S1_g; }

gp_hid_t gp_H5Fcreate(const char *n, unsigned f, gp_hid_t a, gp_hid_t b) { quiet(); return h5.H5Fcreate(n, f, a, b); }
gp_hid_t gp_H5Fopen(const char *n, unsigned f, gp_hid_t a) { quiet(); return h5.H5Fopen(n, f, a); }
gp_herr_t gp_H5Fclose(gp_hid_t f) { quiet(); return h5.H5Fclose(f); }
gp_hid_t gp_H5Oopen(gp_hid_t l, const char *n, gp_hid_t a) { quiet(); return h5.H5Oopen(l, n, a); }
gp_herr_t gp_H5Oclose(gp_hid_t o) { quiet(); return h5.H5Oclose(o); }
gp_hid_t gp_H5Tcopy(gp_hid_t t) { quiet(); return h5.H5Tcopy(t); }
gp_herr_t gp_H5Tclose(gp_hid_t t) { quiet(); return h5.H5Tclose(t); }
gp_herr_t gp_H5Tset_size(gp_hid_t t, size_t s) { quiet(); return h5.H5Tset_size(t, s); }
size_t gp_H5Tget_size(gp_hid_t t) { quiet(); return h5.H5Tget_size(t); }
gp_hid_t gp_H5Screate(int c) { quiet(); return h5.H5Screate(c); }
gp_hid_t gp_H5Screate_simple(int r, const gp_hsize_t *d, const gp_hsize_t *m) { quiet(); return h5.H5Screate_simple(r, d, m); }
gp_herr_t gp_H5Sclose(gp_hid_t s) { quiet(); return h5.H5Sclose(s); }
int gp_H5Sget_simple_extent_ndims(gp_hid_t s) { quiet(); return h5.H5Sget_simple_extent_ndims(s); }
int gp_H5Sget_simple_extent_dims(gp_hid_t s, gp_hsize_t *d, gp_hsize_t *m) { quiet(); return h5.H5Sget_simple_extent_dims(s, d, m); }
gp_herr_t gp_H5Adelete(gp_hid_t l, const char *n) { quiet(); return h5.H5Adelete(l, n); }
gp_hid_t gp_H5Acreate2(gp_hid_t l, const char *n, gp_hid_t t, gp_hid_t s, gp_hid_t a, gp_hid_t b) { quiet(); return h5.H5Acreate2(l, n, t, s, a, b); }
gp_herr_t gp_H5Awrite(gp_hid_t a, gp_hid_t t, const void *b) { quiet(); return h5.H5Awrite(a, t, b); }
gp_herr_t gp_H5Aclose(gp_hid_t a) { quiet(); return h5.H5Aclose(a); }
gp_hid_t gp_H5Aopen(gp_hid_t o, const char *n, gp_hid_t a) { quiet(); return h5.H5Aopen(o, n, a); }
gp_hid_t gp_H5Aget_type(gp_hid_t a) { quiet(); return h5.H5Aget_type(a); }
gp_herr_t gp_H5Aread(gp_hid_t a, gp_hid_t t, void *b) { quiet(); return h5.H5Aread(a, t, b); }
gp_htri_t gp_H5Lexists(gp_hid_t l, const char *n, gp_hid_t a) { quiet(); return h5.H5Lexists(l, n, a); }
gp_hid_t gp_H5Gcreate2(gp_hid_t l, const char *n, gp_hid_t a, gp_hid_t b, gp_hid_t c) { quiet(); return h5.H5Gcreate2(l, n, a, b, c); }
gp_herr_t gp_H5Gclose(gp_hid_t g) { quiet(); return h5.H5Gclose(g); }
gp_hid_t gp_H5Dcreate2(gp_hid_t l, const char *n, gp_hid_t t, gp_hid_t s, gp_hid_t a, gp_hid_t b, gp_hid_t c) { quiet(); return h5.H5Dcreate2(l, n, t, s, a, b, c); }
gp_herr_t gp_H5Dwrite(gp_hid_t d, gp_hid_t t, gp_hid_t m, gp_hid_t f, gp_hid_t x, const void *b) { quiet(); return h5.H5Dwrite(d, t, m, f, x, b); }
gp_herr_t gp_H5Dclose(gp_hid_t d) { quiet(); return h5.H5Dclose(d); }
gp_hid_t gp_H5Dopen2(gp_hid_t l, const char *n, gp_hid_t a) { quiet(); return h5.H5Dopen2(l, n, a); }
gp_hid_t gp_H5Dget_space(gp_hid_t d) { quiet(); return h5.H5Dget_space(d); }
gp_herr_t gp_H5Dread(gp_hid_t d, gp_hid_t t, gp_hid_t m, gp_hid_t f, gp_hid_t x, void *b) { quiet(); return h5.H5Dread(d, t, m, f, x, b); }
gp_hid_t gp_H5Dget_type(gp_hid_t d) { quiet(); return h5.H5Dget_type(d); }
gp_hsize_t gp_H5Dget_storage_size(gp_hid_t d) { quiet(); return h5.H5Dget_storage_size(d); }
gp_hid_t gp_H5Dget_create_plist(gp_hid_t d) { quiet(); return h5.H5Dget_create_plist(d); }
int gp_H5Pget_layout(gp_hid_t p) { quiet(); return h5.H5Pget_layout(p); }
int gp_H5Pget_external_count(gp_hid_t p) { quiet(); return h5.H5Pget_external_count(p); }
gp_herr_t gp_H5Pclose(gp_hid_t p) { quiet(); return h5.H5Pclose(p); }
int gp_H5Tget_class(gp_hid_t t) { quiet(); return h5.H5Tget_class(t); }
int gp_H5Iget_type(gp_hid_t i) { quiet(); return h5.H5Iget_type(i); }
gp_herr_t gp_H5Gget_info(gp_hid_t g, gp_h5g_info_t *info) { quiet(); return h5.H5Gget_info(g, info); }
long gp_H5Lget_name_by_idx(gp_hid_t l, const char *g, int idx, int order, gp_hsize_t n, char *name, size_t size, gp_hid_t a) {
    quiet();
    return h5.H5Lget_name_by_idx(l, g, idx, order, n, name, size, a);
}

int gp_H5Lget_type(gp_hid_t loc, const char *name) {
    // H5L_info_t (1.10) and H5L_info2_t (1.12+) differ after their first member, the link type;
    // the buffer holds either.
    union { int type; unsigned char bytes[128]; int64_t align; } info;
    memset(&info, 0, sizeof info);
    quiet();
    if (h5.H5Lget_info(loc, name, &info, GP_H5P_DEFAULT) < 0) return -1;
    return info.type;
}
