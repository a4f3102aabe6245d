// Blocking knobs shared by the templates on the blocked driver (see blocking_knobs.hpp).
#include "blocking_knobs.hpp"

#include <algorithm>
#include <initializer_list>
#include <span>
#include <string>

#include "tune/error.hpp"

namespace tune::cpu_gemm {
namespace {

// Legal block sizes. mc: multiples of 4, 6, 8, 12 or 14 (every tile's MR divides several);
// nc: multiples of 192 (every tile's NR divides all of them).
const std::vector<std::int64_t> kMcValues{24,  28,  42,  48,  56,  72,  84,  96,  112, 120,
                                          144, 168, 192, 224, 240, 288, 336, 384, 448};
const std::vector<std::int64_t> kKcValues{64, 128, 192, 256, 320, 384, 512, 768, 1024};
const std::vector<std::int64_t> kNcValues{192, 384, 768, 1536, 3072, 6144, 12288};

// The fallback config for untuned shapes: a setting within a few percent of the best on
// large squares and Llama layer shapes (AVX-512; else AVX2). With several cores the threads
// split n, which also keeps them all busy on decode shapes (m <= 16).
struct Defaults {
    std::string_view ukernel;
    std::int64_t mc, kc, nc;
};
constexpr Defaults kAvx512Defaults{"avx512_8x32", 192, 512, 1536};
constexpr Defaults kAvx2Defaults{"avx2_6x16", 192, 256, 3072};
constexpr Defaults kBf16Defaults{"avx512bf16_8x32", 192, 512, 1536};
constexpr Defaults kAmxDefaults{"amx_32x32", 192, 512, 1536};

bool device_has(const DeviceInfo& device, Isa isa) {
    switch (isa) {
        case Isa::avx512f: return device.isa.avx512f;
        case Isa::avx2_fma: return device.isa.avx2 && device.isa.fma;
        case Isa::avx512bf16: return device.isa.avx512f && device.isa.avx512bw && device.isa.avx512_bf16;
        case Isa::amx_bf16: return device.isa.amx_tile && device.isa.amx_bf16 && request_amx_permission();
    }
    return false;
}

const Ukernel* find(const std::vector<const Ukernel*>& kernels, std::string_view label) {
    for (const Ukernel* u : kernels)
        if (u->label == label) return u;
    return nullptr;
}

// The kernels of `lists` (in preference order) that `device` runs.
std::vector<const Ukernel*> runnable(const DeviceInfo& device, std::initializer_list<std::span<const Ukernel>> lists) {
    std::vector<const Ukernel*> out;
    for (auto list : lists)
        for (const Ukernel& u : list)
            if (device_has(device, u.isa)) out.push_back(&u);
    return out;
}

}  // namespace

std::vector<const Ukernel*> device_ukernels(const DeviceInfo& device) {
    return runnable(device, {avx512_ukernels(), avx2_ukernels()});
}

std::vector<const Ukernel*> device_bf16_ukernels(const DeviceInfo& device) {
    return runnable(device, {amx_ukernels(), avx512bf16_ukernels()});
}

std::vector<const Ukernel*> device_dot_ukernels(const DeviceInfo& device) {
    return runnable(device, {avx512_dot_ukernels()});
}

std::vector<const Ukernel*> device_bf16_dot_ukernels(const DeviceInfo& device) {
    return runnable(device, {avx512bf16_dot_ukernels()});
}

KernelSets::KernelSets(const DeviceInfo& device)
    : f32(device_ukernels(device)), bf16(device_bf16_ukernels(device)) {
    if (!bf16.empty()) {
        mixed = f32;
        mixed.insert(mixed.end(), bf16.begin(), bf16.end());
    }
    auto with = [](std::vector<const Ukernel*> v, const std::vector<const Ukernel*>& more) {
        if (!v.empty()) v.insert(v.end(), more.begin(), more.end());
        return v;
    };
    const auto dot = device_dot_ukernels(device);
    f32_dot = with(f32, dot);
    bf16_dot = with(bf16, device_bf16_dot_ukernels(device));
    mixed_dot = with(mixed, dot);
}

const std::vector<const Ukernel*>& KernelSets::of(DType dtype, bool bf16_compute, bool dot_layout) const {
    if (dtype == DType::bf16) return dot_layout ? bf16_dot : bf16;
    if (bf16_compute && !mixed.empty()) return dot_layout ? mixed_dot : mixed;
    return dot_layout ? f32_dot : f32;
}

void add_bf16_start(Space& s, const std::vector<const Ukernel*>& ukernels) {
    if (ukernels.empty() || ukernels.front()->bf16 != nullptr) return;
    for (const Ukernel* u : ukernels)
        if (u->bf16) {
            Config c = s.default_config();
            c.set("ukernel", std::string(u->label));
            if (!s.violation(c)) s.add_start(c);
            return;
        }
}

void add_blocking_knobs(Space& s, const std::vector<const Ukernel*>& ukernels, int cores, bool trans_b) {
    const Isa isa = ukernels.front()->isa;
    const Defaults& def = isa == Isa::amx_bf16     ? kAmxDefaults
                          : isa == Isa::avx512bf16 ? kBf16Defaults
                          : isa == Isa::avx512f    ? kAvx512Defaults
                                                   : kAvx2Defaults;
    std::vector<std::string> labels;
    for (const Ukernel* u : ukernels) labels.emplace_back(u->label);
    std::vector<std::int64_t> threads;
    for (int t = 1; t <= cores; ++t) threads.push_back(t);

    s.add(Knob::categorical("ukernel", labels, std::string(def.ukernel), "micro-kernel: ISA and register tile MRxNR"));
    s.add(Knob::ints("mc", kMcValues, def.mc, "rows of A per packed block (L2-resident)"));
    s.add(Knob::ints("kc", kKcValues, def.kc, "depth of a block (a kc x NR panel of B in L1)"));
    s.add(Knob::ints("nc", kNcValues, def.nc, "columns of B per packed block (L2/L3-resident)"));
    s.add(Knob::boolean("pack_a", true, "copy A blocks into MR-row panels (else read in place)"));
    s.add(Knob::boolean("pack_b", true, "copy B blocks into NR-column panels (else read in place)"));
    s.add(Knob::ints("threads", threads, cores, "threads sharing C"));
    s.add(Knob::categorical("split", {"m", "n"}, cores > 1 ? "n" : "m",
                            "dim of C whose tiles the threads share (n: decode, m <= 16)"));

    // Constraints read the tile through the label; the table is fixed for the template's life.
    auto tile = [kernels = ukernels](const Config& c) -> const Ukernel* {
        const KnobValue* v = c.find("ukernel");
        if (!v || !std::holds_alternative<std::string>(*v)) return nullptr;
        return find(kernels, std::get<std::string>(*v));
    };
    s.require("mc_multiple_of_tile_rows", [tile](const Config& c) {
        const Ukernel* u = tile(c);
        return u && c.get_int("mc") % u->mr == 0;
    });
    s.require("nc_multiple_of_tile_cols", [tile](const Config& c) {
        const Ukernel* u = tile(c);
        return u && c.get_int("nc") % u->nr == 0;
    });
    if (trans_b) {
        // B stored n x k has no contiguous runs along n for the micro-kernel's vector loads.
        s.require("pack_b_needed_for_trans_b", [](const Config& c) { return c.get_int("pack_b") == 1; });
    }
    // bf16 kernels read only VNNI-packed panels.
    if (std::any_of(ukernels.begin(), ukernels.end(), [](const Ukernel* u) { return u->bf16 != nullptr; })) {
        s.require("bf16_ukernel_packs", [tile](const Config& c) {
            const Ukernel* u = tile(c);
            return u && (!u->bf16 || (c.get_int("pack_a") == 1 && c.get_int("pack_b") == 1));
        });
    }
    // With one thread the split is irrelevant: keep one of the two equivalent configs.
    s.require("split_m_when_single_thread",
              [](const Config& c) { return c.get_int("threads") > 1 || c.get_str("split") == "m"; });
}

Blocking blocking_from_config(const Config& c, const std::vector<const Ukernel*>& ukernels, std::string_view who) {
    Blocking b;
    const std::string label = c.get_str("ukernel");
    b.ukernel = find(ukernels, label);
    if (!b.ukernel) throw Error(std::string(who) + ": unknown ukernel '" + label + "'");
    if (!host_supports(b.ukernel->isa))
        throw Error(std::string(who) + ": ukernel=" + label + " needs an ISA this CPU lacks");
    b.mc = c.get_int("mc");
    b.kc = c.get_int("kc");
    b.nc = c.get_int("nc");
    b.pack_a = c.get_int("pack_a") != 0;
    b.pack_b = c.get_int("pack_b") != 0;
    if (b.ukernel->bf16) b.pack_a = b.pack_b = true;
    b.threads = static_cast<int>(c.get_int("threads"));
    b.split = c.get_str("split") == "n" ? Split::n : Split::m;
    return b;
}

Config decode_default(const Space& s, const GemmDims& d) {
    const Config c = s.default_config();
    if (d.m > 16 || d.trans_a || !d.trans_b) return c;
    const std::string tile = d.m == 1 ? "1x8" : d.m == 2 ? "2x8" : "4x6";
    // The f32 kernel where the space has it, else the bf16 one (bf16 operands).
    for (const char* family : {"avx512dot_", "avx512bf16dot_"}) {
        Config dot = c;
        dot.set("ukernel", family + tile);
        if (!s.violation(dot)) return dot;
    }
    return c;
}

Config blocking_equivalence_key(const GemmDims& d, const Config& c, const std::vector<const Ukernel*>& ukernels) {
    const KnobValue* label = c.find("ukernel");
    const Ukernel* u = label && std::holds_alternative<std::string>(*label)
                           ? find(ukernels, std::get<std::string>(*label))
                           : nullptr;
    if (!u) return c;
    Config key = c;
    if (u->is_dot()) {  // a dot-form kernel reads its operands in place over the whole depth
        for (const char* name : {"mc", "kc", "nc", "pack_a", "pack_b"})
            if (c.find(name)) key.set(name, std::int64_t{0});
        return key;
    }
    // The driver's loops run `for (x = 0; x < dim; x += block)` and its scratch holds
    // min(block, rounded dim): both are the same for every block >= the rounded dim.
    const std::pair<const char*, std::int64_t> saturates[] = {
        {"mc", round_up(d.m, u->mr)}, {"kc", d.k}, {"nc", round_up(d.n, u->nr)}};
    for (const auto& [name, dim] : saturates) {
        const KnobValue* v = c.find(name);
        if (v && std::holds_alternative<std::int64_t>(*v) && std::get<std::int64_t>(*v) >= dim)
            key.set(name, std::int64_t{0});
    }
    return key;
}

ScratchPool::Lease ScratchPool::take() const {
    {
        std::lock_guard lock(mutex_);
        if (!free_.empty()) {
            AlignedBuffer b = std::move(free_.back());
            free_.pop_back();
            return Lease(*this, std::move(b));
        }
    }
    return Lease(*this, AlignedBuffer(bytes_));
}

void ScratchPool::give_back(AlignedBuffer b) const {
    std::lock_guard lock(mutex_);
    free_.push_back(std::move(b));
}

}  // namespace tune::cpu_gemm
