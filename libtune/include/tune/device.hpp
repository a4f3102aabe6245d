// Device: what a measurement ran on. The fingerprint (model, ISA, cores, caches, library
// versions) is part of every stored key, so results from another machine are never served.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "tune/types.hpp"

namespace tune {

struct CpuIsa {
    bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512vl = false,
         avx512_bf16 = false, amx_tile = false, amx_bf16 = false;
    friend bool operator==(const CpuIsa&, const CpuIsa&) = default;
};

struct DeviceInfo {
    Backend backend = Backend::cpu;
    std::string model;               // "Intel(R) Xeon(R) Platinum 8480+"
    std::string arch;                // "x86_64" (CPU), "sm_90a", "gfx942"
    CpuIsa isa;                      // CPU only
    int cores = 1;                   // CPU cores usable by this process / SMs / CUs
    std::int64_t l1d_bytes = 0, l2_bytes = 0, l3_bytes = 0;
    std::int64_t memory_bytes = 0;
    std::map<std::string, std::string> versions;  // "libtune", "openblas", "compiler", ...

    // Short stable id (hex of a hash over the fingerprint JSON); the DB key column.
    std::string id() const;
    std::string summary() const;  // one line for humans
    friend bool operator==(const DeviceInfo&, const DeviceInfo&) = default;
};

void to_json(nlohmann::json& j, const DeviceInfo& d);
void from_json(const nlohmann::json& j, DeviceInfo& d);

// Reads /proc/cpuinfo, cpuid, sysfs caches and the affinity mask of this process. cores is the
// mask's CPU count, or LIBTUNE_NUM_THREADS when set (1 to that count; else tune::Error): a cap
// on the threads of every CPU config, and, being part of the fingerprint, its own store keys.
DeviceInfo detect_cpu();
CpuIsa detect_cpu_isa();

// AMX needs permission from the Linux kernel (arch_prctl XCOMP_PERM) before first use;
// returns true when granted (idempotent, thread-safe).
bool request_amx_permission();

// Pins the calling thread to one CPU (index into this process's affinity mask); returns
// false when the OS refuses. Used for measurement and worker threads.
bool pin_current_thread(int cpu_index);

// Lets the calling thread run on every CPU of this process's affinity mask (as it was at
// first use): a thread started by a pinned one inherits its single CPU otherwise.
bool unpin_current_thread();

}  // namespace tune
