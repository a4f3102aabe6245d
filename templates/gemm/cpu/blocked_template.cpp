// "cpu.gemm.blocked": the Template around the blocked driver. Declares the knobs and their
// constraints (one space per trans_a/trans_b pair, built once), validates configs and turns
// them into a Blocking for the driver.
#include <algorithm>
#include <array>
#include <mutex>
#include <string>
#include <vector>

#include "blocked_driver.hpp"
#include "tune/buffer.hpp"
#include "tune/error.hpp"
#include "tune/templates/cpu_gemm.hpp"
#include "tune/thread_pool.hpp"

#ifndef LIBTUNE_CPU_GEMM_VERSION
#define LIBTUNE_CPU_GEMM_VERSION "unversioned"
#endif

namespace tune {
namespace {

using cpu_gemm::Blocking;
using cpu_gemm::Split;
using cpu_gemm::Ukernel;

constexpr const char* kName = "cpu.gemm.blocked";

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

bool device_has(const DeviceInfo& device, cpu_gemm::Isa isa) {
    switch (isa) {
        case cpu_gemm::Isa::avx512f: return device.isa.avx512f;
        case cpu_gemm::Isa::avx2_fma: return device.isa.avx2 && device.isa.fma;
    }
    return false;
}

class BlockedGemmKernel final : public Kernel {
public:
    BlockedGemmKernel(const GemmDims& dims, const Blocking& blocking, std::shared_ptr<ThreadPool> pool)
        : dims_(dims), blocking_(blocking), pool_(std::move(pool)),
          workspace_floats_(cpu_gemm::workspace_floats_per_thread(dims, blocking) *
                            static_cast<std::size_t>(blocking.threads)) {}

    void run(const OpArgs& args) const override {
        if (args.inputs.size() != 2 || args.outputs.size() != 1)
            throw Error(std::string(kName) + ": expects inputs {A, B} and outputs {C}");
        const auto* A = static_cast<const float*>(args.inputs[0]);
        const auto* B = static_cast<const float*>(args.inputs[1]);
        auto* C = static_cast<float*>(args.outputs[0]);
        if (!A || !B || !C) throw Error(std::string(kName) + ": null operand");
        AlignedBuffer scratch = take_scratch();
        try {
            cpu_gemm::blocked_gemm(dims_, blocking_, A, B, C, scratch.as<float>(), pool_.get());
        } catch (...) {
            give_back(std::move(scratch));
            throw;
        }
        give_back(std::move(scratch));
    }

    std::size_t workspace_bytes() const override { return workspace_floats_ * sizeof(float); }

private:
    // Scratch buffers are reused across calls; concurrent callers each get their own.
    AlignedBuffer take_scratch() const {
        {
            std::lock_guard lock(scratch_mutex_);
            if (!free_scratch_.empty()) {
                AlignedBuffer b = std::move(free_scratch_.back());
                free_scratch_.pop_back();
                return b;
            }
        }
        return AlignedBuffer(workspace_bytes());
    }
    void give_back(AlignedBuffer b) const {
        std::lock_guard lock(scratch_mutex_);
        free_scratch_.push_back(std::move(b));
    }

    GemmDims dims_;
    Blocking blocking_;
    std::shared_ptr<ThreadPool> pool_;
    std::size_t workspace_floats_;
    mutable std::mutex scratch_mutex_;
    mutable std::vector<AlignedBuffer> free_scratch_;
};

class BlockedGemmTemplate final : public Template {
public:
    explicit BlockedGemmTemplate(const DeviceInfo& device)
        : info_{kName, OpKind::gemm, Backend::cpu, LIBTUNE_CPU_GEMM_VERSION, false},
          cores_(std::max(1, device.cores)) {
        for (auto list : {cpu_gemm::avx512_ukernels(), cpu_gemm::avx2_ukernels()})
            for (const Ukernel& u : list)
                if (device_has(device, u.isa)) ukernels_.push_back(&u);
        const auto specs = dim_specs(OpKind::gemm);
        for (std::size_t i = 0; i < specs.size(); ++i) {
            if (specs[i].name == "trans_a") trans_a_index_ = i;
            if (specs[i].name == "trans_b") trans_b_index_ = i;
        }
        if (ukernels_.empty()) return;
        for (int ta = 0; ta < 2; ++ta)
            for (int tb = 0; tb < 2; ++tb) spaces_[static_cast<std::size_t>(ta * 2 + tb)] = build_space(tb == 1);
        pool_ = std::make_shared<ThreadPool>(cores_);
    }

    const TemplateInfo& info() const override { return info_; }

    bool supports(const Problem& p) const override {
        return p.op == OpKind::gemm && p.dtype == DType::f32 && !ukernels_.empty();
    }

    std::shared_ptr<const Space> space(const Problem& p) const override {
        if (p.op != OpKind::gemm) throw Error(std::string(kName) + ": not a gemm problem");
        if (ukernels_.empty()) throw Error(std::string(kName) + ": no micro-kernel runs on this CPU");
        return spaces_[static_cast<std::size_t>((p.dims[trans_a_index_] != 0) * 2 +
                                                (p.dims[trans_b_index_] != 0))];
    }

    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        if (!supports(p)) throw Error(std::string(kName) + ": unsupported problem " + shape_key(p));
        validate(p);
        space(p)->validate(c);
        const GemmDims d = gemm_dims(p);
        Blocking b;
        b.ukernel = find_ukernel(c.get_str("ukernel"));
        if (!cpu_gemm::host_supports(b.ukernel->isa))
            throw Error(std::string(kName) + ": ukernel=" + std::string(b.ukernel->label) +
                    " needs an ISA this CPU lacks");
        b.mc = c.get_int("mc");
        b.kc = c.get_int("kc");
        b.nc = c.get_int("nc");
        b.pack_a = c.get_int("pack_a") != 0;
        b.pack_b = c.get_int("pack_b") != 0;
        b.threads = static_cast<int>(c.get_int("threads"));
        b.split = c.get_str("split") == "n" ? Split::n : Split::m;
        return std::make_unique<BlockedGemmKernel>(d, b, pool_);
    }

private:
    const Ukernel* find_ukernel(std::string_view label) const {
        for (const Ukernel* u : ukernels_)
            if (u->label == label) return u;
        throw Error(std::string(kName) + ": unknown ukernel '" + std::string(label) + "'");
    }

    std::shared_ptr<const Space> build_space(bool trans_b) const {
        const bool avx512 = ukernels_.front()->isa == cpu_gemm::Isa::avx512f;
        const Defaults& def = avx512 ? kAvx512Defaults : kAvx2Defaults;
        std::vector<std::string> labels;
        for (const Ukernel* u : ukernels_) labels.emplace_back(u->label);
        std::vector<std::int64_t> threads;
        for (int t = 1; t <= cores_; ++t) threads.push_back(t);

        auto s = std::make_shared<Space>();
        s->add(Knob::categorical("ukernel", labels, std::string(def.ukernel),
                                 "micro-kernel: ISA and register tile MRxNR"));
        s->add(Knob::ints("mc", kMcValues, def.mc, "rows of A per packed block (L2-resident)"));
        s->add(Knob::ints("kc", kKcValues, def.kc, "depth of a block (a kc x NR panel of B in L1)"));
        s->add(Knob::ints("nc", kNcValues, def.nc, "columns of B per packed block (L2/L3-resident)"));
        s->add(Knob::boolean("pack_a", true, "copy A blocks into MR-row panels (else read in place)"));
        s->add(Knob::boolean("pack_b", true, "copy B blocks into NR-column panels (else read in place)"));
        s->add(Knob::ints("threads", threads, cores_, "threads sharing C"));
        s->add(Knob::categorical("split", {"m", "n"}, cores_ > 1 ? "n" : "m",
                                 "dim of C whose tiles the threads share (n: decode, m <= 16)"));

        // Constraints read the tile through the label; the table is fixed for the template's life.
        auto tile = [kernels = ukernels_](const Config& c) -> const Ukernel* {
            const KnobValue* v = c.find("ukernel");
            if (!v || !std::holds_alternative<std::string>(*v)) return nullptr;
            for (const Ukernel* u : kernels)
                if (u->label == std::get<std::string>(*v)) return u;
            return nullptr;
        };
        s->require("mc_multiple_of_tile_rows", [tile](const Config& c) {
            const Ukernel* u = tile(c);
            return u && c.get_int("mc") % u->mr == 0;
        });
        s->require("nc_multiple_of_tile_cols", [tile](const Config& c) {
            const Ukernel* u = tile(c);
            return u && c.get_int("nc") % u->nr == 0;
        });
        if (trans_b) {
            // B stored n x k has no contiguous runs along n for the micro-kernel's vector loads.
            s->require("pack_b_needed_for_trans_b", [](const Config& c) { return c.get_int("pack_b") == 1; });
        }
        // With one thread the split is irrelevant: keep one of the two equivalent configs.
        s->require("split_m_when_single_thread",
                   [](const Config& c) { return c.get_int("threads") > 1 || c.get_str("split") == "m"; });
        return s;
    }

    TemplateInfo info_;
    int cores_;
    std::vector<const Ukernel*> ukernels_;
    std::size_t trans_a_index_ = 4, trans_b_index_ = 5;
    std::array<std::shared_ptr<const Space>, 4> spaces_;
    std::shared_ptr<ThreadPool> pool_;
};

}  // namespace

std::unique_ptr<Template> make_cpu_gemm_template(const DeviceInfo& device) {
    return std::make_unique<BlockedGemmTemplate>(device);
}

}  // namespace tune
