#include "CKernels.h"
#include <stdio.h>
#include <stdlib.h>

/* OpenBLAS's thread server (pthreads builds). Weak: the serial and OpenMP builds lack them. */
extern void openblas_read_env(void) __attribute__((weak));
extern int blas_thread_shutdown_(void) __attribute__((weak));
extern int blas_thread_init(void) __attribute__((weak));

int gpk_blas_set_thread_timeout(int log2_cycles) {
    if (getenv("OPENBLAS_THREAD_TIMEOUT") != NULL) return 0;
    if (!openblas_read_env || !blas_thread_shutdown_ || !blas_thread_init) return 0;
    char value[16];
    snprintf(value, sizeof value, "%d", log2_cycles);
    if (setenv("OPENBLAS_THREAD_TIMEOUT", value, 1) != 0) return 0;
    openblas_read_env();
    blas_thread_shutdown_();
    blas_thread_init();
    return 1;
}
