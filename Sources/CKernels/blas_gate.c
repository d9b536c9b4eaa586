#define _GNU_SOURCE
#include "CKernels.h"
#include <pthread.h>
#include <stdatomic.h>

/* OpenBLAS's thread count is one setting for the whole process, and on AVX2 its kernels round a
 * product differently on one thread than on several. A section that sets it to one thread
 * (BLAS.whileSingleThreaded) therefore excludes every product outside it: those take this lock
 * shared for the length of one call, the section takes it exclusively. Writers are preferred so
 * that a stream of short products on another thread cannot hold a section off indefinitely.
 * Threads working for a section are marked (`inside`) and call OpenBLAS without the lock. */
#ifdef PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP
static pthread_rwlock_t gate = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
#else
static pthread_rwlock_t gate = PTHREAD_RWLOCK_INITIALIZER;
#endif
static _Thread_local int inside;
static atomic_int configured_threads;

int gpk_blas_call_begin(void) {
    if (inside) return 0;
    pthread_rwlock_rdlock(&gate);
    return 1;
}

void gpk_blas_call_end(int locked) {
    if (locked) pthread_rwlock_unlock(&gate);
}

int gpk_blas_section_begin(void) {
    if (inside) return 0;
    pthread_rwlock_wrlock(&gate);
    inside = 1;
    return 1;
}

void gpk_blas_section_end(void) {
    inside = 0;
    pthread_rwlock_unlock(&gate);
}

int gpk_blas_worker_begin(void) {
    int was = inside;
    inside = 1;
    return was;
}

void gpk_blas_worker_end(int was) { inside = was; }

int gpk_blas_configured_threads(void) { return atomic_load(&configured_threads); }

void gpk_blas_set_configured_threads(int n) { atomic_store(&configured_threads, n); }
