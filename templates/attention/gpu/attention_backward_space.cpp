#include "attention_backward_space.hpp"

#include <algorithm>
#include <cmath>
#include <initializer_list>

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
    s.split = c.has("split") && c.get_int("split") != 0;
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

namespace {

// Both backward templates' mode: what the dQ pass does for P and dS.
Knob mode_knob() {
    return Knob::categorical("mode", {"recompute", "store"}, "recompute",
                             "recompute P and dS in the dQ pass from Q, K, V, LSE and dO (no workspace), or store "
                             "dS from the dK/dV pass (batch x heads x q_len x kv_len floats)");
}

}  // namespace

std::shared_ptr<Space> build_backward_space(const Problem& p, const Target& t) {
    const std::int64_t d = attention_dims(p).head_dim;
    auto s = std::make_shared<Space>();
    s->add(mode_knob());
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

bool supports_backward_mma(const Problem& p) { return supports_backward(p) && attention_dims(p).head_dim <= 128; }

std::int64_t backward_mma_shared_bytes(const BackwardShape& s) {
    // 16-bit Q, dO (and its residual with split), K and V tiles, rows padded by 8 elements; f32
    // LSE and rowsum(dO O) per query row.
    const std::int64_t rows = s.q_tile * (s.split ? 3 : 2) + 2 * s.k_tile;
    return rows * (s.head_dim + 8) * 2 + 8 * s.q_tile;
}

double backward_single_rounding_tolerance(const Problem& p) {
    // dO, P and dS rounded once each move a term of the gradients' sums by at most u times the
    // term's share of the reference's error scale (which holds |dS|, (w + 1) P |dO| and the dP
    // bound P |dO||V|); two roundings meet in each product, on top of the f32 roundoff.
    return 2 * unit_roundoff(p.dtype) + default_tolerance(p);
}

std::shared_ptr<Space> build_backward_mma_space(const Problem& p, const Target& t) {
    const std::int64_t d = attention_dims(p).head_dim;
    auto s = std::make_shared<Space>();
    s->add(mode_knob());
    s->add(Knob::ints("q_tile", {16, 32, 64, 128}, 64, "query rows per tile (dQ blocks: 16 or 32 rows per warp)"));
    s->add(Knob::ints("k_tile", {16, 32, 64, 128}, 64, "keys per tile (dK/dV blocks: 16 or 32 keys per warp)"));
    s->add(Knob::ints("warps", {1, 2, 4, 8}, 4, "warps per thread block"));
    s->add(Knob::boolean("split", true,
                         "dO, P and dS as two 16-bit terms each (f32-level accuracy); off rounds them once "
                         "(needs a tolerance that admits it)"));
    auto rows_per_warp = [](std::int64_t tile, const Config& c) {
        const std::int64_t rows = tile / c.get_int("warps");
        return rows * c.get_int("warps") == tile && (rows == 16 || rows == 32);
    };
    s->require("keys_per_warp_16_or_32", [rows_per_warp](const Config& c) { return rows_per_warp(c.get_int("k_tile"), c); });
    s->require("query_rows_per_warp_16_or_32",
               [rows_per_warp](const Config& c) { return rows_per_warp(c.get_int("q_tile"), c); });
    // f32 accumulators per thread: dK and dV (head_dim per 16-key slice) with S^T and dP^T of a
    // chunk of at most 32 queries in the dK/dV pass; dQ (head_dim / 2 per 16-row slice) with S
    // and dP of a chunk of at most 32 keys in the dQ pass.
    s->require("accumulators_fit_registers", [d](const Config& c) {
        const std::int64_t key_slices = c.get_int("k_tile") / c.get_int("warps") / 16;
        const std::int64_t row_slices = c.get_int("q_tile") / c.get_int("warps") / 16;
        const std::int64_t query_chunk = std::min<std::int64_t>(c.get_int("q_tile"), 32);
        const std::int64_t key_chunk = std::min<std::int64_t>(c.get_int("k_tile"), 32);
        return key_slices * (d + query_chunk) <= 192 && row_slices * (d / 2 + key_chunk) <= 192;
    });
    const Problem prob = p;
    s->require("rounding_within_tolerance", [prob](const Config& c) {
        return c.get_int("split") != 0 || effective_tolerance(prob) >= backward_single_rounding_tolerance(prob);
    });
    s->require("shared_memory_limit", [prob, t](const Config& c) {
        return backward_mma_shared_bytes(BackwardShape::of(prob, c, t)) <= t.max_shared_bytes;
    });
    return s;
}

namespace {

// The passes' grids and the workspace, which both kernels share; the caller adds what differs.
BackwardLaunch launch_grids(const AttentionDims& a, const BackwardShape& s) {
    BackwardLaunch l;
    l.key_grid[0] = unsigned((a.kv_len + s.k_tile - 1) / s.k_tile);
    l.key_grid[1] = unsigned(a.batch * a.kv_heads);
    l.query_grid[0] = unsigned((a.q_len + s.q_tile - 1) / s.q_tile);
    l.query_grid[1] = unsigned(a.batch * a.heads);
    l.block = unsigned(s.threads);
    l.workspace_bytes = backward_workspace_bytes(a, s.store);
    return l;
}

std::string instance_name(const std::string& kernel, std::initializer_list<long long> args) {
    std::string out = "libtune::" + kernel + "<";
    for (long long v : args) out += std::to_string(v) + ",";
    out.back() = '>';
    return out;
}

}  // namespace

BackwardLaunch backward_launch(const Problem& p, const Config& c, const Target& t) {
    const BackwardShape s = BackwardShape::of(p, c, t);
    BackwardLaunch l = launch_grids(attention_dims(p), s);
    l.shared_bytes = unsigned(backward_shared_bytes(s));
    l.instance = instance_name(t.kernel, {s.element, s.head_dim, s.q_tile, s.k_tile, s.threads, s.store});
    return l;
}

BackwardLaunch backward_mma_launch(const Problem& p, const Config& c, const Target& t) {
    const BackwardShape s = BackwardShape::of(p, c, t);
    BackwardLaunch l = launch_grids(attention_dims(p), s);
    l.shared_bytes = unsigned(backward_mma_shared_bytes(s));
    l.instance = instance_name(t.kernel, {s.element, s.head_dim, s.q_tile, s.k_tile, s.threads / t.wave, s.store, s.split});
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
