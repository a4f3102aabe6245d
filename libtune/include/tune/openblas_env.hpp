// OpenBLAS chooses its kernels when it is loaded. Builds older than the CPU fall back to a
// generic core ("Prescott") that runs ~10x slower, which would make every comparison with
// OpenBLAS meaningless. Programs that measure against it call this first thing in main().
#pragma once

#include <string>

namespace tune {

// The core OpenBLAS runs now, e.g. "SkylakeX" or "Prescott".
std::string openblas_core();

// When OPENBLAS_CORETYPE is unset and OpenBLAS picked a core without the vector ISA this CPU
// has, re-executes the program (same argv) with OPENBLAS_CORETYPE set to the best core the
// CPU can run (SKYLAKEX for AVX-512, HASWELL for AVX2). Returns normally otherwise, and if
// the re-exec fails. A user's own OPENBLAS_CORETYPE is always respected; when it keeps
// OpenBLAS below the AVX-512 kernels the CPU could run, a note on stderr says so.
void use_best_openblas_core(char** argv);

}  // namespace tune
