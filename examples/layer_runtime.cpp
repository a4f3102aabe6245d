// A runtime's view of one transformer layer: for each token count it runs the layer's GEMMs
// through the Dispatcher and reports, per shape, whether the store answered exactly. Run it
// with LIBTUNE_RECORD=seen.jsonl to record what it saw, tune that with
// `tune recorded --from seen.jsonl --db tuned.db`, and run it again: every shape then hits.
//
//   layer_runtime CONFIG.json DB TOKENS...     (DB may not exist yet: then nothing is tuned)
#include <tune/db/database.hpp>
#include <tune/dispatcher.hpp>
#include <tune/error.hpp>
#include <tune/model.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s CONFIG.json DB TOKENS...\n", argv[0]);
        return 2;
    }
    try {
        tune::ModelShape model = tune::load_model_config(argv[1]);
        std::vector<std::int64_t> tokens;
        for (int i = 3; i < argc; ++i) tokens.push_back(std::atoll(argv[i]));
        std::unique_ptr<tune::Dispatcher> dispatcher;
        std::unique_ptr<tune::Database> empty;
        if (std::filesystem::exists(argv[2])) {
            dispatcher = tune::Dispatcher::open(argv[2]);
        } else {
            // First run of a new application: no store yet, every shape uses a default.
            empty = tune::make_memory_database();
            tune::DeviceInfo device = tune::detect_cpu();
            tune::DispatcherOptions options;
            if (const char* env = std::getenv("LIBTUNE_RECORD")) options.record_path = env;
            dispatcher = std::make_unique<tune::Dispatcher>(
                *empty, std::make_shared<const tune::TemplateRegistry>(tune::builtin_registry(device)), device, options);
        }
        int hits = 0, misses = 0;
        for (const auto& g : tune::layer_gemms(model, tokens, tune::DType::f32)) {
            auto d = tune::gemm_dims(g.problem);
            std::vector<float> a(std::size_t(d.m * d.k), 0.5f), b(std::size_t(d.n * d.k), 0.25f), c(std::size_t(d.m * d.n));
            const void* in[] = {a.data(), b.data()};
            void* out[] = {c.data()};
            dispatcher->run(g.problem, {in, out});
            auto s = dispatcher->lookup(g.problem);
            (s.source == tune::LookupSource::exact ? hits : misses)++;
            std::printf("%-12s tokens=%-5lld %-8s %s\n", g.name.c_str(), (long long)g.tokens,
                        std::string(tune::to_string(s.source)).c_str(), s.config->text().c_str());
        }
        std::printf("%d shapes hit the store, %d did not (snapshot %s)\n", hits, misses,
                    dispatcher->snapshot_id().c_str());
        return 0;
    } catch (const tune::Error& e) {
        std::fprintf(stderr, "layer_runtime: %s\n", e.what());
        return 1;
    }
}
