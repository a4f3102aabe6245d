// tune: offline tuning, lookup and store inspection from the command line.
#include <cstdio>
#include <iostream>

#include "cli.hpp"
#include "tune/error.hpp"
#include "tune/openblas_env.hpp"

int main(int argc, char** argv) {
    tune::use_best_openblas_core(argv);  // the OpenBLAS baseline must be OpenBLAS at its best
    CLI::App app{"libtune: auto-tuning for GEMM and attention kernels"};
    app.require_subcommand(1);
    app.set_version_flag("--version", LIBTUNE_VERSION_STRING);
    tune::cli::add_tune_commands(app);
    tune::cli::add_db_commands(app);
    tune::cli::add_report_command(app);
    tune::cli::add_model_commands(app);
    try {
        app.parse(argc, argv);
        // What a verb printed is its result (an export, a table): a write that failed, e.g. to
        // a full disk, must not end in success.
        std::cout.flush();
        if (std::fflush(stdout) != 0 || std::ferror(stdout) || !std::cout)
            throw tune::Error("cannot write the output to standard output");
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const tune::Error& e) {
        std::fprintf(stderr, "tune: error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tune: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
