#include "attention_backward_space.hpp"

#include <cmath>

#include "tune/error.hpp"

namespace tune::gpu_attention {

bool supports_backward(const Problem& p) { return supported_shape(p) && attention_dims(p).backward; }

BackwardShape BackwardShape::of(const Problem& p, const Config& c, const Target& t) {
    BackwardShape s;
    s.element = p.dtype == DType::f16 ? 1 : 0;
    s.head_dim = int(attention_dims(p).head_dim);
    s.q_tile = int(c.get_int("q_tile"));
    s.k_tile = int(c.get_int("k_tile"));
    s.threads = int(c.get_int("warps")) * t.wave;
    s.store = c.get_str("mode") == "store";
    return s;
}

std::int64_t backward_shared_bytes(const BackwardShape& s) {
    const std::int64_t d = s.head_dim, q = s.q_tile, k = s.k_tile;
    // f32: dO tile, P / dS tile, LSE and rowsum(dO O) per row; 16-bit: Q, K and V tiles.
    return 4 * (q * d + q * k + 2 * q) + 2 * (q + 2 * k) * d;
}

std::size_t backward_workspace_bytes(const AttentionDims& a, bool store) {
    if (!store) return 0;
    return std::size_t(a.batch * a.heads * a.q_len) * std::size_t(a.kv_len) * sizeof(float);
}

std::shared_ptr<Space> build_backward_space(const Problem& p, const Target& t) {
    const std::int64_t d = attention_dims(p).head_dim;
    auto s = std::make_shared<Space>();
    s->add(Knob::categorical("mode", {"recompute", "store"}, "recompute",
                             "recompute P and dS in the dQ pass from Q, K, V, LSE and dO (no workspace), or store "
                             "dS from the dK/dV pass (batch x heads x q_len x kv_len floats)"));
    // Defaults valid for every head_dim and both waves (see the constraints below).
    s->add(Knob::ints("q_tile", {16, 32, 64}, d >= 256 ? 16 : 32, "query rows per tile (dQ blocks; dK/dV inner steps)"));
    s->add(Knob::ints("k_tile", {16, 32, 64}, 32, "keys per tile (dK/dV blocks; dQ inner steps)"));
    s->add(Knob::ints("warps", {1, 2, 4, 8}, 4, "warps (wavefronts) per thread block"));
    // Each thread keeps an equal share of the block's dK and dV (or dQ) tile in registers, at most 64 floats each.
    auto share_fits = [d, t](std::int64_t rows, const Config& c) {
        const std::int64_t threads = c.get_int("warps") * t.wave, elements = rows * d;
        return elements % threads == 0 && elements / threads <= 64;
    };
    s->require("key_tile_share_fits_registers", [share_fits](const Config& c) { return share_fits(c.get_int("k_tile"), c); });
    s->require("query_tile_share_fits_registers",
               [share_fits](const Config& c) { return share_fits(c.get_int("q_tile"), c); });
    const Problem prob = p;
    s->require("shared_memory_limit", [prob, t](const Config& c) {
        return backward_shared_bytes(BackwardShape::of(prob, c, t)) <= t.max_shared_bytes;
    });
    return s;
}

BackwardLaunch backward_launch(const Problem& p, const Config& c, const Target& t) {
    const AttentionDims a = attention_dims(p);
    const BackwardShape s = BackwardShape::of(p, c, t);
    BackwardLaunch l;
    l.key_grid[0] = unsigned((a.kv_len + s.k_tile - 1) / s.k_tile);
    l.key_grid[1] = unsigned(a.batch * a.kv_heads);
    l.query_grid[0] = unsigned((a.q_len + s.q_tile - 1) / s.q_tile);
    l.query_grid[1] = unsigned(a.batch * a.heads);
    l.block = unsigned(s.threads);
    l.shared_bytes = unsigned(backward_shared_bytes(s));
    l.workspace_bytes = backward_workspace_bytes(a, s.store);
    l.instance = "libtune::" + t.kernel + "<" + std::to_string(s.element) + "," + std::to_string(s.head_dim) + "," +
                 std::to_string(s.q_tile) + "," + std::to_string(s.k_tile) + "," + std::to_string(s.threads) + "," +
                 (s.store ? "1" : "0") + ">";
    return l;
}

libtune::AttentionBackwardParams backward_params(const AttentionDims& a, const OpArgs& args, const BackwardLaunch& l,
                                                 void* workspace, int pass) {
    require(args.inputs.size() == 6 && args.outputs.size() == 3,
            "gpu attention backward: expects inputs {Q, K, V, O, LSE, dO} and outputs {dQ, dK, dV}");
    require(l.workspace_bytes == 0 || workspace != nullptr, "gpu attention backward: mode=store needs its workspace");
    require(pass == 0 || pass == 1, "gpu attention backward: pass must be 0 (dK, dV) or 1 (dQ), got " + std::to_string(pass));
    libtune::AttentionBackwardParams b{};
    libtune::AttentionParams& p = b.a;
    p.q = args.inputs[0];
    p.k = args.inputs[1];
    p.v = args.inputs[2];
    // The forward's O and LSE: read only here (the shared argument names them as outputs).
    p.o = static_cast<float*>(const_cast<void*>(args.inputs[3]));
    p.lse = static_cast<float*>(const_cast<void*>(args.inputs[4]));
    p.batch = a.batch, p.heads = a.heads, p.kv_heads = a.kv_heads, p.q_len = a.q_len, p.kv_len = a.kv_len;
    p.window = a.window;
    p.causal = a.causal ? 1 : 0;
    p.splits = 1;
    p.scale_log2 = float(a.scale / std::log(2.0));  // the problem's scale, in base 2
    b.dout = static_cast<const float*>(args.inputs[5]);
    b.dq = static_cast<float*>(args.outputs[0]);
    b.dk = static_cast<float*>(args.outputs[1]);
    b.dv = static_cast<float*>(args.outputs[2]);
    b.ds = static_cast<float*>(workspace);
    b.pass = pass;
    return b;
}

}  // namespace tune::gpu_attention
