// Fuzz target: the command-line parser. The input's lines are argv for a `tune gemm`-like
// command built with CLI11 and the real DimOptions; its callback parses the dims and dtype
// and round-trips the shape key, but tunes nothing. The raw bytes also go to parse_shape_key.
#include <cstdlib>
#include <string>
#include <vector>

#include "../cli/cli.hpp"
#include "tune/error.hpp"
#include "tune/problem.hpp"
#include "tune/types.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    try {
        tune::Problem p = tune::parse_shape_key(text);
        if (!(tune::parse_shape_key(tune::shape_key(p)) == p)) std::abort();
    } catch (const tune::Error&) {
    }

    std::vector<std::string> args;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= text.size(); ++i)
        if (i == text.size() || text[i] == '\n') {
            args.push_back(text.substr(start, i - start));
            start = i + 1;
        }
    if (args.size() > 64) return 0;
    CLI::App app{"tune"};
    app.require_subcommand(1);
    auto* gemm = app.add_subcommand("gemm", "");
#ifndef LIBTUNE_FUZZ_PLAIN_DIMS
    tune::cli::DimOptions dims;
    dims.add_to(*gemm, {tune::OpKind::gemm});
#else
    // The libFuzzer build links no cli/commands_tune.cpp (see CMakeLists.txt): plain dims.
    std::int64_t m = 0, n = 0, k = 0;
    gemm->add_option("--m", m)->required();
    gemm->add_option("--n", n)->required();
    gemm->add_option("--k", k)->required();
#endif
    std::size_t budget = 24;
    double time_limit = 60;
    std::string strategy = "annealing", dtype = "f32", db = "tuned.db";
    std::uint64_t seed = 0;
    bool cold = false, quiet = false;
    gemm->add_option("--budget", budget)->check(CLI::PositiveNumber);
    gemm->add_option("--time-limit", time_limit)->check(CLI::NonNegativeNumber);
    gemm->add_option("--strategy", strategy);
    gemm->add_option("--seed", seed);
    gemm->add_option("--dtype", dtype);
    gemm->add_option("--db", db);
    gemm->add_flag("--cold", cold);
    gemm->add_flag("-q,--quiet", quiet);
    gemm->callback([&] {
#ifndef LIBTUNE_FUZZ_PLAIN_DIMS
        tune::Problem p = dims.problem(tune::OpKind::gemm, tune::parse_dtype(dtype));
#else
        tune::Problem p = tune::make_gemm(m, n, k, tune::parse_dtype(dtype));
        tune::validate(p);
#endif
        if (!(tune::parse_shape_key(tune::shape_key(p)) == p)) std::abort();
    });
    std::vector<const char*> argv{"tune"};
    for (const auto& a : args) argv.push_back(a.c_str());
    try {
        app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError&) {
    } catch (const tune::Error&) {
    }
    return 0;
}
