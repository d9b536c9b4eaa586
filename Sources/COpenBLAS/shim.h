// OpenBLAS's CBLAS interface (Debian: libopenblas-dev; pkg-config adds the include path).
#include <cblas.h>
// Exported by OpenBLAS, declared in its cblas.h on most builds; repeated so the module always sees them.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
/// The kernel family OpenBLAS picked at load time ("Prescott", "Haswell", "SkylakeX", ...).
char *openblas_get_corename(void);
