// Runs a GEMM through the Dispatcher with the config tuned for its shape, as a runtime
// would: open the store once, then look up and run per call.
//
//   dispatch_gemm tuned.db [m n k]     (B is stored n x k, like a PyTorch Linear weight)
#include <tune/dispatcher.hpp>
#include <tune/error.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 2 && argc != 5) {
        std::fprintf(stderr, "usage: %s DB [M N K]\n", argv[0]);
        return 2;
    }
    try {
        const std::int64_t m = argc == 5 ? std::atoll(argv[2]) : 16, n = argc == 5 ? std::atoll(argv[3]) : 4096,
                           k = argc == 5 ? std::atoll(argv[4]) : 4096;
        auto dispatcher = tune::Dispatcher::open(argv[1]);
        tune::Problem problem = tune::make_gemm(m, n, k, tune::DType::f32, false, true);
        tune::validate(problem);

        std::vector<float> a(std::size_t(m * k)), b(std::size_t(n * k)), c(std::size_t(m * n));
        std::mt19937 rng(1);
        std::uniform_real_distribution<float> u(-1, 1);
        for (auto& x : a) x = u(rng);
        for (auto& x : b) x = u(rng);

        tune::Selection s = dispatcher->lookup(problem);
        std::printf("shape:    %s\nsource:   %s\ntemplate: %s\nconfig:   %s\n", tune::shape_key(problem).c_str(),
                    std::string(tune::to_string(s.source)).c_str(), s.tmpl->info().name.c_str(), s.config->text().c_str());

        const void* inputs[] = {a.data(), b.data()};
        void* outputs[] = {c.data()};
        dispatcher->run(problem, {inputs, outputs});  // first call instantiates and caches the kernel
        auto t0 = std::chrono::steady_clock::now();
        const int reps = 5;
        for (int i = 0; i < reps; ++i) dispatcher->run(problem, {inputs, outputs});
        double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;

        // Spot-check a few outputs against a double-precision dot product.
        double worst = 0;
        for (std::int64_t i = 0; i < m; i += std::max<std::int64_t>(1, m / 4))
            for (std::int64_t j = 0; j < n; j += std::max<std::int64_t>(1, n / 7)) {
                double ref = 0, scale = 0;
                for (std::int64_t p = 0; p < k; ++p) {
                    ref += double(a[i * k + p]) * double(b[j * k + p]);
                    scale += std::fabs(double(a[i * k + p]) * double(b[j * k + p]));
                }
                worst = std::max(worst, std::fabs(c[i * n + j] - ref) / scale);
            }
        std::printf("time:     %.3f ms (%.1f GFLOP/s)\nerror:    %.3g\n", sec * 1e3, 2.0 * m * n * k / sec * 1e-9, worst);
        if (!(worst < 1e-4)) {
            std::fprintf(stderr, "dispatch_gemm: result does not match the reference\n");
            return 1;
        }
        return 0;
    } catch (const tune::Error& e) {
        std::fprintf(stderr, "dispatch_gemm: %s\n", e.what());
        return 1;
    }
}
