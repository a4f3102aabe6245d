// Template and Kernel: a kernel family for (op, backend) that builds the tuning Space of a
// problem and instantiates runnable kernels for configs. The registry maps (op, backend) to
// the templates that can compute it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tune/config.hpp"
#include "tune/device.hpp"
#include "tune/problem.hpp"
#include "tune/space.hpp"

namespace tune {

// Operand pointers for one call. GEMM: inputs {A, B}, outputs {C}, contiguous row-major as
// the Problem describes (see make_gemm).
struct OpArgs {
    std::span<const void* const> inputs;
    std::span<void* const> outputs;
};

// Kernels read their inputs while they write their outputs (a GEMM stores the product before
// its epilogue reads the residual; attention writes O while later query blocks still read K
// and V): an output that shares memory with an input or with another output gives wrong
// results. Names the first such pair ("output C overlaps input residual", "output LSE
// overlaps input K"), empty when there is none.
std::string overlapping_operands(const Problem& p, const OpArgs& args);

// A problem + config made runnable. run() is thread-compatible: one kernel object may be
// run concurrently only if the template says so (CPU GEMM kernels allocate per call).
class Kernel {
public:
    virtual ~Kernel() = default;
    virtual void run(const OpArgs& args) const = 0;
    virtual std::size_t workspace_bytes() const { return 0; }
};

struct TemplateInfo {
    std::string name;     // "cpu.gemm.blocked": stored verbatim in the DB
    OpKind op;
    Backend backend;
    std::string version;  // hash of the template's source; a change marks stored results stale
    bool vendor = false;  // wraps a vendor library (OpenBLAS, oneDNN, cuBLASLt)
    // Seconds the library's idle threads keep the cores busy after its last call (OpenBLAS
    // spins its workers before they sleep). The Measurer waits this long after measuring a
    // candidate, so the next one, of any template or rank, does not share the cores with them.
    double settle_s = 0;
};

class Template {
public:
    Template() : instance_(next_instance()) {}
    Template(const Template&) : instance_(next_instance()) {}  // a copy is another template
    Template& operator=(const Template&) { return *this; }
    virtual ~Template() = default;
    // Unique to this object for the life of the process (addresses are reused once an object
    // is freed): what an isolated measurer's worker, a fork, knows a template by.
    std::uint64_t instance() const { return instance_; }
    virtual const TemplateInfo& info() const = 0;
    // Whether this template can compute p at all on this device (dtype, ISA, ...).
    virtual bool supports(const Problem& p) const = 0;
    // The space of configs for p. Shared and immutable; cheap to call on hot paths.
    virtual std::shared_ptr<const Space> space(const Problem& p) const = 0;
    // The config to run p with before anything is measured: the Dispatcher's answer for a shape
    // nothing covers, and a first candidate of every search. Default: the space's default; a
    // template overrides it where a shape class wants another kernel (e.g. decode rows).
    // Must be valid in space(p).
    virtual Config default_config(const Problem& p) const { return space(p)->default_config(); }
    // Builds a kernel for (p, c). The config must be valid in space(p); throws otherwise.
    virtual std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const = 0;
    // Peak workspace bytes a kernel for (p, c) holds (Kernel::workspace_bytes), known without
    // building it when the template can say; memory caps filter configs with it.
    virtual std::size_t workspace_bytes(const Problem& p, const Config& c) const {
        return instantiate(p, c)->workspace_bytes();
    }
    // The key of c's class at p: configs with equal keys run the same instructions over the
    // same data for p (e.g. a block size at least the dim it blocks), so measuring one of them
    // measures all. The Tuner measures one config per class. The key is a Config only to
    // compare and hash; it need not be valid. Default: every config is its own class.
    virtual Config equivalence_key(const Problem& p, const Config& c) const {
        static_cast<void>(p);
        return c;
    }

private:
    static std::uint64_t next_instance();
    std::uint64_t instance_;
};

// Explicit registry of templates, built once and then read-only.
class TemplateRegistry {
public:
    void add(std::unique_ptr<Template> t);  // throws on a duplicate name
    const Template* find(std::string_view name) const;  // nullptr if unknown
    // Drops a template (e.g. one a run must leave out); false if it was not registered.
    bool remove(std::string_view name);
    // Templates for (op, backend) that support p, in registration order (own before vendor).
    std::vector<const Template*> for_problem(const Problem& p, Backend backend) const;
    std::vector<const Template*> all() const;

private:
    std::vector<std::unique_ptr<Template>> templates_;
};

// Every template built into this library that runs on `device` (CPU templates check ISA).
TemplateRegistry builtin_registry(const DeviceInfo& device);

// Whether t computes p on `backend`: its op and backend, and supports(p).
bool computes(const Template& t, const Problem& p, Backend backend);

// Why t cannot run config c on p, as the Dispatcher judges a stored row: "template NAME does
// not support it" or "NAME config 'TEXT': reason"; nullopt when it can.
std::optional<std::string> refusal(const Template& t, const Problem& p, const Config& c);

}  // namespace tune
