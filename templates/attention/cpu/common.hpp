// Pieces shared by the CPU attention templates: operand unpacking, the threads knob and the
// checks every template makes before building a kernel.
#pragma once

#include <algorithm>
#include <memory>
#include <string>

#include "tune/error.hpp"
#include "tune/kernel.hpp"
#include "tune/thread_pool.hpp"

namespace tune::cpu_attention {

struct Operands {
    const float *q, *k, *v;
    float *o, *lse;
};

inline Operands unpack(const OpArgs& args, const std::string& name) {
    if (args.inputs.size() != 3 || args.outputs.size() != 2)
        throw Error(name + ": expects inputs {Q, K, V} and outputs {O, LSE}");
    Operands x{static_cast<const float*>(args.inputs[0]), static_cast<const float*>(args.inputs[1]),
               static_cast<const float*>(args.inputs[2]), static_cast<float*>(args.outputs[0]),
               static_cast<float*>(args.outputs[1])};
    if (!x.q || !x.k || !x.v || !x.o || !x.lse) throw Error(name + ": null operand");
    return x;
}

// Both templates need AVX-512F (their exp and dot-product kernels) and f32 operands whose
// lengths fit the int tile arithmetic.
// `backward`: whether the template computes the gradients (dim backward = 1) or the forward.
bool supports_problem(const Problem& p, const DeviceInfo& device, bool backward = false);

// threads = 1 .. cores, default cores.
Knob threads_knob(int cores, std::string help);

inline std::int64_t round16(std::int64_t n) { return (n + 15) / 16 * 16; }

// An attention template with one space for every problem it supports (unfused, backward): the
// checks before building a kernel live here, the kernel itself in the subclass's build().
class SingleSpaceTemplate : public Template {
public:
    SingleSpaceTemplate(TemplateInfo info, const DeviceInfo& device, bool backward, std::shared_ptr<const Space> space)
        : info_(std::move(info)), device_(device), backward_(backward), space_(std::move(space)),
          pool_(std::make_shared<ThreadPool>(std::max(1, device.cores))) {}

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
