// OpenBLAS's CBLAS interface (Debian: libopenblas-dev; pkg-config adds the include path).
#include <cblas.h>
// Exported by OpenBLAS, declared in its cblas.h on most builds; repeated so the module always sees them.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
/// The kernel family OpenBLAS picked at load time ("Prescott", "Haswell", "SkylakeX", ...).
char *openblas_get_corename(void);
// LAPACK (OpenBLAS bundles it): Cholesky factorisation and inverse of a symmetric positive
// definite matrix, column-major, Fortran calling convention.
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);
