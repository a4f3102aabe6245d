/* The C API as a C runtime uses it: open a tuned store once, look up and run a GEMM.
 *   dispatch_gemm_c tuned.db [m n k]     (B is stored n x k, like a PyTorch Linear weight)
 * Build against an installed libtune:  cc dispatch_gemm_c.c $(pkg-config --cflags --libs libtune) */
#include <tune/c_api.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
    if (argc != 2 && argc != 5) {
        fprintf(stderr, "usage: %s DB [M N K]\n", argv[0]);
        return 2;
    }
    const int64_t m = argc == 5 ? atoll(argv[2]) : 16, n = argc == 5 ? atoll(argv[3]) : 256,
                  k = argc == 5 ? atoll(argv[4]) : 128;
    tune_dispatcher* d = NULL;
    if (tune_dispatcher_open(argv[1], NULL, &d) != TUNE_OK) {
        fprintf(stderr, "dispatch_gemm_c: %s\n", tune_last_error());
        return 1;
    }
    tune_gemm_desc g = tune_gemm_desc_init(m, n, k);
    g.trans_b = 1;
    tune_selection s;
    if (tune_lookup_gemm(d, &g, &s) != TUNE_OK) {
        fprintf(stderr, "dispatch_gemm_c: %s\n", tune_last_error());
        tune_dispatcher_close(d);
        return 1;
    }
    static const char* sources[] = {"exact", "nearest", "default"};
    printf("libtune:  %s\ntemplate: %s\nconfig:   %s\nsource:   %s\n", tune_version(), s.template_name, s.config,
           sources[s.source]);

    float* a = malloc(sizeof(float) * (size_t)(m * k));
    float* b = malloc(sizeof(float) * (size_t)(n * k));
    float* c = malloc(sizeof(float) * (size_t)(m * n));
    if (!a || !b || !c) return 1;
    for (int64_t i = 0; i < m * k; ++i) a[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
    for (int64_t i = 0; i < n * k; ++i) b[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
    int rc = tune_gemm(d, &g, a, b, NULL, NULL, c);
    if (rc != TUNE_OK) fprintf(stderr, "dispatch_gemm_c: %s\n", tune_last_error());

    double worst = 0; /* against a naive double-precision GEMM */
    for (int64_t i = 0; rc == TUNE_OK && i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double ref = 0, scale = 0;
            for (int64_t p = 0; p < k; ++p) {
                ref += (double)a[i * k + p] * b[j * k + p];
                scale += fabs((double)a[i * k + p] * b[j * k + p]);
            }
            double err = fabs(c[i * n + j] - ref) / (scale > 0 ? scale : 1);
            if (err > worst) worst = err;
        }
    printf("error:    %.3g\n", worst);
    free(a), free(b), free(c);
    tune_dispatcher_close(d);
    return rc == TUNE_OK && worst < 1e-5 ? 0 : 1;
}
