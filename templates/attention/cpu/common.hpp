// Pieces shared by the CPU attention templates: operand unpacking, the threads knob and the
// checks every template makes before building a kernel.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "tune/error.hpp"
#include "tune/kernel.hpp"
#include "tune/thread_pool.hpp"

namespace tune::cpu_attention {

// Q, K and V are f32 (q, k, v) or, for a bf16 problem, bf16 bits (q16, k16, v16; the f32
// pointers null); O and LSE are always f32.
struct Operands {
    const float *q, *k, *v;
    float *o, *lse;
    const std::int32_t* table = nullptr;  // a paged KV cache's block table (see Problem's `page`)
    std::int64_t pool_pages = 0;          // pages in a paged cache's K and V pools
    const std::uint16_t *q16 = nullptr, *k16 = nullptr, *v16 = nullptr;
    bool bf16() const { return q16 != nullptr; }
};

// Inputs {Q, K, V}, and the block table after them when the cache is paged (a.page > 0), then
// optionally the pool's page count (a pointer to one int64; default batch * pages per
// sequence); `bf16`: Q, K and V hold bf16.
inline Operands unpack(const OpArgs& args, const std::string& name, const AttentionDims& a, bool bf16 = false) {
    const std::size_t inputs = args.inputs.size();
    if ((a.page > 0 ? inputs != 4 && inputs != 5 : inputs != 3) || args.outputs.size() != 2)
        throw Error(name + ": expects inputs {Q, K, V}" +
                    (a.page > 0 ? " and the block table (then optionally the pool's page count)" : "") +
                    " and outputs {O, LSE}");
    Operands x{nullptr, nullptr, nullptr, static_cast<float*>(args.outputs[0]), static_cast<float*>(args.outputs[1])};
    if (bf16) {
        x.q16 = static_cast<const std::uint16_t*>(args.inputs[0]);
        x.k16 = static_cast<const std::uint16_t*>(args.inputs[1]);
        x.v16 = static_cast<const std::uint16_t*>(args.inputs[2]);
    } else {
        x.q = static_cast<const float*>(args.inputs[0]);
        x.k = static_cast<const float*>(args.inputs[1]);
        x.v = static_cast<const float*>(args.inputs[2]);
    }
    if (a.page > 0) {
        x.table = static_cast<const std::int32_t*>(args.inputs[3]);
        x.pool_pages = a.batch * a.pages_per_sequence();
        if (inputs == 5) {
            if (!args.inputs[4]) throw Error(name + ": null operand");
            x.pool_pages = *static_cast<const std::int64_t*>(args.inputs[4]);
            if (x.pool_pages < 1 || x.pool_pages > std::numeric_limits<std::int32_t>::max() ||
                x.pool_pages > std::numeric_limits<std::int64_t>::max() / (a.page * a.kv_heads * a.head_dim))
                throw Error(name + ": the pool's page count must be in [1, 2^31) and its elements must fit int64, got " +
                            std::to_string(x.pool_pages));
        }
    }
    for (const void* in : {args.inputs[0], args.inputs[1], args.inputs[2]})
        if (!in) throw Error(name + ": null operand");
    if (!x.o || !x.lse || (a.page > 0 && !x.table)) throw Error(name + ": null operand");
    return x;
}

// A template that cannot read pages in place reads a paged KV cache as a contiguous one: each
// call first copies K and V out of their pages ([batch][kv_heads][kv_len][head_dim], K then V,
// in a workspace of paged_gather_bytes, elements as stored) and points x.k and x.v (x.k16 and
// x.v16) there. One extra pass over K and V: a decode step, which only streams them, pays it
// in full; a prefill barely notices.
std::size_t paged_gather_bytes(const AttentionDims& a, std::size_t element_bytes = sizeof(float));  // 0: contiguous
void gather_paged(const AttentionDims& a, Operands& x, void* into);
// Throws unless every entry of the block table names a page of the pool: the table comes from
// the caller, and a kernel that reads pages in place must never read outside the pool.
void check_block_table(const AttentionDims& a, const std::int32_t* table, std::int64_t pool_pages);

// The templates need AVX-512F (their exp and dot-product kernels) and operands whose lengths
// fit the int tile arithmetic: f32, or bf16 Q/K/V where `bf16_io` (the fused forward).
// `backward`: whether the template computes the gradients (dim backward = 1) or the forward.
bool supports_problem(const Problem& p, const DeviceInfo& device, bool backward = false, bool bf16_io = false);

// threads = 1 .. cores, default cores.
Knob threads_knob(int cores, std::string help);

inline std::int64_t round16(std::int64_t n) { return (n + 15) / 16 * 16; }

// An attention template with one space for every problem it supports (unfused, backward): the
// checks before building a kernel live here, the kernel itself in the subclass's build().
class SingleSpaceTemplate : public Template {
public:
    SingleSpaceTemplate(TemplateInfo info, const DeviceInfo& device, bool backward, std::shared_ptr<const Space> space)
        : info_(std::move(info)), device_(device), backward_(backward), space_(std::move(space)),
          pool_(shared_thread_pool(std::max(1, device.cores))) {}

    const TemplateInfo& info() const override { return info_; }
    bool supports(const Problem& p) const override { return supports_problem(p, device_, backward_); }
    std::shared_ptr<const Space> space(const Problem&) const override { return space_; }
    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        if (!supports(p)) throw Error(info_.name + ": unsupported problem " + shape_key(p));
        validate(p);
        space_->validate(c);
        return build(attention_dims(p), c, pool_);
    }

protected:
    virtual std::unique_ptr<Kernel> build(const AttentionDims& a, const Config& c,
                                          std::shared_ptr<ThreadPool> pool) const = 0;

private:
    TemplateInfo info_;
    DeviceInfo device_;
    bool backward_;
    std::shared_ptr<const Space> space_;
    std::shared_ptr<ThreadPool> pool_;
};

}  // namespace tune::cpu_attention
