#include "tune/device.hpp"

#include <cpuid.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tune/config.hpp"
#include "tune/error.hpp"
#include "environment.hpp"

extern "C" char* openblas_get_config(void);

namespace tune {
namespace {

std::uint64_t xgetbv0() {
    std::uint32_t eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<std::uint64_t>(edx) << 32) | eax;
}

std::string read_first_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

std::int64_t parse_cache_size(const std::string& text) {
    // sysfs writes sizes like "48K" or "2048K" or "105M".
    if (text.empty()) return 0;
    std::int64_t v = 0;
    std::size_t i = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') v = v * 10 + (text[i++] - '0');
    if (i < text.size() && text[i] == 'K') v *= 1024;
    if (i < text.size() && text[i] == 'M') v *= 1024 * 1024;
    return v;
}

const cpu_set_t& process_affinity() {
    // The process mask as it was at first use, before any thread pinned itself.
    static const cpu_set_t mask = [] {
        cpu_set_t m;
        CPU_ZERO(&m);
        if (sched_getaffinity(0, sizeof m, &m) != 0) CPU_SET(0, &m);
        return m;
    }();
    return mask;
}

// First use at program start, before main: a thread that pins itself later (the Measurer's,
// or a caller's) must not become the mask that unpinned worker threads get.
[[maybe_unused]] const bool process_affinity_at_start = (process_affinity(), true);

// The cores the device offers: the process's CPUs, or fewer when LIBTUNE_NUM_THREADS says so
// (a runtime that keeps the other cores for its own threads). Every thread knob stops there.
int usable_cores() {
    const int available = std::max(1, CPU_COUNT(&process_affinity()));
    return detail::int_from_env("LIBTUNE_NUM_THREADS", 1, available, "the CPUs this process may run on")
        .value_or(available);
}

}  // namespace

CpuIsa detect_cpu_isa() {
    CpuIsa isa;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return isa;
    bool osxsave = (c >> 27) & 1;
    if (!osxsave) return isa;
    std::uint64_t xcr0 = xgetbv0();
    bool os_avx = (xcr0 & 0x6) == 0x6;
    bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
    bool os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);
    isa.fma = os_avx && ((c >> 12) & 1);
    __cpuid_count(7, 0, a, b, c, d);
    isa.avx2 = os_avx && ((b >> 5) & 1);
    isa.avx512f = os_avx512 && ((b >> 16) & 1);
    isa.avx512bw = os_avx512 && ((b >> 30) & 1);
    isa.avx512vl = os_avx512 && ((b >> 31) & 1);
    isa.amx_tile = os_amx && ((d >> 24) & 1);
    isa.amx_bf16 = os_amx && ((d >> 22) & 1);
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    isa.avx512_bf16 = os_avx512 && ((a1 >> 5) & 1);
    return isa;
}

DeviceInfo detect_cpu() {
    DeviceInfo info;
    info.backend = Backend::cpu;
    info.arch = "x86_64";
    info.isa = detect_cpu_isa();
    {
        std::ifstream in("/proc/cpuinfo");
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind("model name", 0) == 0) {
                auto colon = line.find(':');
                if (colon != std::string::npos) info.model = line.substr(line.find_first_not_of(' ', colon + 1));
                break;
            }
        }
    }
    if (info.model.empty()) info.model = "unknown x86_64";
    info.cores = usable_cores();
    for (int i = 0; i < 8; ++i) {
        std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
        std::string level = read_first_line(dir + "level");
        if (level.empty()) break;
        std::string type = read_first_line(dir + "type");
        std::int64_t size = parse_cache_size(read_first_line(dir + "size"));
        if (level == "1" && type == "Data") info.l1d_bytes = size;
        if (level == "2") info.l2_bytes = size;
        if (level == "3") info.l3_bytes = size;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0) info.memory_bytes = static_cast<std::int64_t>(pages) * page;
    info.versions["compiler"] = "gcc " __VERSION__;
    // Only the release: the kernel core OpenBLAS picked is a property of its template's
    // version, not of the machine.
    if (const char* cfg = openblas_get_config()) {
        std::istringstream words(cfg);
        std::string name, release;
        words >> name >> release;
        info.versions["openblas"] = release;
    }
    return info;
}

bool request_amx_permission() {
    static const bool granted = [] {
        CpuIsa isa = detect_cpu_isa();
        if (!isa.amx_tile) return false;
        constexpr long kArchReqXcompPerm = 0x1023;
        constexpr long kXfeatureXtiledata = 18;
        return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
    }();
    return granted;
}

bool pin_current_thread(int cpu_index) {
    const cpu_set_t& mask = process_affinity();
    int n = CPU_COUNT(&mask);
    if (n == 0 || cpu_index < 0) return false;
    int want = cpu_index % n, seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &mask)) continue;
        if (seen++ == want) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
        }
    }
    return false;
}

bool unpin_current_thread() {
    const cpu_set_t& mask = process_affinity();
    return CPU_COUNT(&mask) > 0 && pthread_setaffinity_np(pthread_self(), sizeof mask, &mask) == 0;
}

std::string DeviceInfo::id() const {
    nlohmann::json j = *this;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a64(j.dump())));
    return buf;
}

std::string DeviceInfo::summary() const {
    std::ostringstream s;
    s << to_string(backend) << ": " << model << ", " << cores << (backend == Backend::cpu ? " cores" : " units");
    if (backend == Backend::cpu) {
        s << ", ISA";
        if (isa.avx2) s << " avx2";
        if (isa.avx512f) s << " avx512";
        if (isa.avx512_bf16) s << " avx512_bf16";
        if (isa.amx_bf16) s << " amx_bf16";
        s << ", L2 " << l2_bytes / 1024 << " KiB, L3 " << l3_bytes / (1024 * 1024) << " MiB";
    } else {
        s << ", " << arch;
    }
    return s.str();
}

void to_json(nlohmann::json& j, const DeviceInfo& d) {
    j = nlohmann::json{{"backend", to_string(d.backend)},
                       {"model", d.model},
                       {"arch", d.arch},
                       {"isa",
                        {{"avx2", d.isa.avx2},
                         {"fma", d.isa.fma},
                         {"avx512f", d.isa.avx512f},
                         {"avx512bw", d.isa.avx512bw},
                         {"avx512vl", d.isa.avx512vl},
                         {"avx512_bf16", d.isa.avx512_bf16},
                         {"amx_tile", d.isa.amx_tile},
                         {"amx_bf16", d.isa.amx_bf16}}},
                       {"cores", d.cores},
                       {"l1d_bytes", d.l1d_bytes},
                       {"l2_bytes", d.l2_bytes},
                       {"l3_bytes", d.l3_bytes},
                       {"memory_bytes", d.memory_bytes},
                       {"versions", d.versions}};
}

void from_json(const nlohmann::json& j, DeviceInfo& d) {
    require(j.is_object(), "device JSON: expected an object");
    auto get = [&](const char* key, auto& out) {
        require(j.contains(key), std::string("device JSON: missing '") + key + "'");
        try {
            j.at(key).get_to(out);
        } catch (const nlohmann::json::exception&) {
            throw Error(std::string("device JSON: '") + key + "' has the wrong type");
        }
    };
    DeviceInfo out;
    std::string backend;
    get("backend", backend);
    out.backend = parse_backend(backend, "device JSON 'backend'");
    get("model", out.model);
    get("arch", out.arch);
    get("cores", out.cores);
    require(out.cores >= 1 && out.cores <= 1 << 20, "device JSON: 'cores' out of range");
    get("l1d_bytes", out.l1d_bytes);
    get("l2_bytes", out.l2_bytes);
    get("l3_bytes", out.l3_bytes);
    get("memory_bytes", out.memory_bytes);
    get("versions", out.versions);
    require(j.contains("isa") && j["isa"].is_object(), "device JSON: missing 'isa'");
    const auto& isa = j["isa"];
    auto flag = [&](const char* key) { return isa.contains(key) && isa[key].is_boolean() && isa[key].get<bool>(); };
    out.isa = {flag("avx2"), flag("fma"), flag("avx512f"), flag("avx512bw"),
               flag("avx512vl"), flag("avx512_bf16"), flag("amx_tile"), flag("amx_bf16")};
    d = std::move(out);
}

}  // namespace tune
