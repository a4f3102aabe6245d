// OpenBLAS beside measurements: the core it runs and how long its threads spin after a call.
// OpenBLAS chooses its kernels when it is loaded. Builds older than the CPU fall back to a
// generic core ("Prescott") that runs ~10x slower, which would make every comparison with
// OpenBLAS meaningless. Programs that measure against it call this first thing in main().
#pragma once

#include <string>

namespace tune {

// How long OpenBLAS's worker threads spin after a call before they sleep: its THREAD_TIMEOUT
// default of 2^28 cycles, 0.13 s at 2 GHz. A oneDNN candidate timed inside that window ran 3x
// slower (8.0 ms vs 2.2-2.6 ms, m = 1, n = k = 4096, 2 threads, in 3 of 7 runs; none with
// OPENBLAS_THREAD_TIMEOUT=4). TemplateInfo::settle_s of every OpenBLAS-backed template, and
// the Measurer's wait after computing a new workload's reference with OpenBLAS.
inline constexpr double kOpenblasSettleSeconds = 0.15;

// The core OpenBLAS runs now, e.g. "SkylakeX" or "Prescott".
std::string openblas_core();

// When OPENBLAS_CORETYPE is unset and OpenBLAS picked a core without the vector ISA this CPU
// has, re-executes the program (same argv) with OPENBLAS_CORETYPE set to the best core the
// CPU can run (SKYLAKEX for AVX-512, HASWELL for AVX2). Returns normally otherwise, and if
// the re-exec fails. A user's own OPENBLAS_CORETYPE is always respected; when it keeps
// OpenBLAS below the AVX-512 kernels the CPU could run, a note on stderr says so.
void use_best_openblas_core(char** argv);

}  // namespace tune
