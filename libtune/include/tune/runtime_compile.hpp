// Run-time kernel compilation, backend-neutral: what to compile (source, instance, arch), the
// result (binary or the compiler's log), and the compiler interface NVRTC and hiprtc implement.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tune/config.hpp"
#include "tune/problem.hpp"

namespace tune {

struct CompileRequest {
    std::string source_name;  // "gemm_mma.cu": names the program in logs
    std::string source;       // the translation unit
    // Headers the source includes by name, as (name, text); embedded at build time.
    std::vector<std::pair<std::string, std::string>> headers;
    // The kernel instance, e.g. "libtune::gemm_mma<1,128,128,32,64,64,3,3,0,1>": a template
    // name with the config's knob values as its arguments. Its lowered (mangled) name is the
    // entry point.
    std::string instance;
    std::string arch;                  // "sm_80", "sm_90a", "gfx90a"
    std::vector<std::string> options;  // extra compiler flags (-D..., -std=c++17 is implied)
    // Hash over source, headers and options: with instance, arch and the compiler's version
    // it keys the on-disk binary cache.
    std::string source_hash() const;
};

struct CompileResult {
    bool ok = false;
    std::string binary;        // cubin / code object
    std::string entry;         // lowered name of `instance` in the binary
    std::string log;           // compiler log (the error on failure)
    double seconds = 0;        // compile time (0 for a cache hit)
    bool from_cache = false;
};

// Kernel source files embedded into the library at build time: (file name, text).
using SourceFiles = std::vector<std::pair<std::string, std::string>>;

// A request for `instance` of the program `source` (one of `files`), with every header of
// `files` (*.h, *.cuh) available to it by name. Throws tune::Error when `source` is absent.
CompileRequest program_request(const SourceFiles& files, const std::string& source, const std::string& instance,
                               const std::string& arch);

class KernelCompiler {
public:
    virtual ~KernelCompiler() = default;
    // "nvrtc 13.0": part of every cache key, so a new compiler never serves an old binary.
    virtual std::string version() const = 0;
    // Never throws for a bad program: a compile error is a result with ok = false and the log.
    virtual CompileResult compile(const CompileRequest& request) const = 0;
};

// Implemented by templates whose kernels are compiled at run time (CUDA, HIP), next to
// Template: the Tuner's executor starts compiling submitted candidates ahead of measurement.
class RuntimeCompiled {
public:
    virtual ~RuntimeCompiled() = default;
    // What instantiate(p, c) compiles: each program's instance and arch (a kernel may need
    // more than one, e.g. a split-K GEMM and its reduction).
    virtual std::vector<CompileRequest> compile_requests(const Problem& p, const Config& c) const = 0;
    // Queues the compile of every binary instantiate(p, c) needs and returns at once.
    virtual void precompile(const Problem& p, const Config& c) const = 0;
};

}  // namespace tune
