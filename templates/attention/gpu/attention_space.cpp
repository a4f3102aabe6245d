#include "attention_space.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tune/error.hpp"

namespace tune::gpu_attention {
namespace {

std::int64_t round_up(std::int64_t x, std::int64_t to) { return (x + to - 1) / to * to; }

// Rows of one block's unit: a kv head's positions x group when packed, one head's positions otherwise.
std::int64_t unit_rows(const AttentionDims& a, bool gqa_pack) { return gqa_pack ? a.q_len * a.group() : a.q_len; }

bool decode(const AttentionDims& a) { return a.q_len <= kDecodeQLen; }

}  // namespace

bool supported_shape(const Problem& p) {
    if (p.op != OpKind::attention || (p.dtype != DType::bf16 && p.dtype != DType::f16)) return false;
    const AttentionDims a = attention_dims(p);
    constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();
    const bool head_dim_ok = a.head_dim == 64 || a.head_dim == 80 || a.head_dim == 96 || a.head_dim == 128 || a.head_dim == 256;
    return head_dim_ok && a.batch * a.heads <= 65535 && a.q_len * a.group() <= kIntMax / 2 && a.kv_len <= kIntMax / 2;
}

bool supports(const Problem& p) { return supported_shape(p) && !attention_dims(p).backward; }

Shape Shape::of(const Problem& p, const Config& c) {
    Shape s;
    s.element = p.dtype == DType::f16 ? 1 : 0;
    s.head_dim = int(attention_dims(p).head_dim);
    s.q_tile = int(c.get_int("q_tile"));
    s.k_tile = int(c.get_int("k_tile"));
    s.warps = int(c.get_int("warps"));
    if (c.has("stages")) s.stages = int(c.get_int("stages"));
    if (c.has("split_kv")) s.split_kv = int(c.get_int("split_kv"));
    s.gqa_pack = c.has("gqa_pack") && c.get_int("gqa_pack") != 0;
    s.p_split = c.has("p_split") && c.get_int("p_split") != 0;
    return s;
}

std::int64_t shared_bytes(const Shape& s, const Target& t) {
    const std::int64_t d = s.head_dim, q = s.q_tile, k = s.k_tile;
    if (t.tensor_cores)  // attention_flash.cu: Q tile and STAGES x (K, V) tiles, rows padded by 8 elements
        return (q + 2 * s.stages * k) * (d + 8) * 2;
    // attention_flash.hip: Q, K, V tiles (16-bit), the scores (f32) and three f32 row statistics.
    return 2 * (q * d + 2 * k * d) + 4 * (q * k + 3 * q);
}

double single_rounding_tolerance(const Problem& p) {
    // P in [0, 1] rounded once moves each term of sum_j p_j v_j by u p_j |v_j|, at most u/2 of
    // the reference's error scale (which is >= 2 sum_j p_j |v_j|), on top of the f32 roundoff.
    return unit_roundoff(p.dtype) / 2 + default_tolerance(p);
}

std::shared_ptr<Space> build_space(const Problem& p, const Target& t) {
    const AttentionDims a = attention_dims(p);
    const bool dec = decode(a), grouped = a.group() > 1;
    const std::int64_t d = a.head_dim;
    auto s = std::make_shared<Space>();
    const std::int64_t q_default = dec ? 16 : (t.tensor_cores || d < 256 ? 64 : 32);
    s->add(Knob::ints("q_tile", {16, 32, 64, 128}, q_default,
                      "query rows per thread block (with gqa_pack: positions x the group's heads)"));
    const std::int64_t k_default = d >= 256 || !t.tensor_cores ? 32 : 64;
    s->add(Knob::ints("k_tile", {32, 64, 128}, k_default,
                      "keys per online-softmax step (K and V tiles in shared memory)"));
    s->add(Knob::ints("warps", {1, 2, 4, 8}, dec ? 1 : 4, "warps (wavefronts) per thread block"));
    if (t.tensor_cores) {
        s->add(Knob::ints("stages", {1, 2, 3}, 2, "K/V tile buffers in flight (cp.async)"));
        s->add(Knob::boolean("p_split", true,
                             "P V with P as two 16-bit terms (f32-level accuracy); off rounds P once "
                             "(needs a tolerance that admits it)"));
    }
    if (grouped)
        s->add(Knob::boolean("gqa_pack", true, "one block holds every query head of a KV head, so each K/V tile is read once"));
    if (dec) {
        // Default: 8 parts, fewer when the keys make fewer tiles (the default must be valid).
        const std::int64_t tiles = (a.kv_len + k_default - 1) / k_default;
        std::int64_t split_default = 1;
        while (split_default < 8 && split_default * 2 <= tiles) split_default *= 2;
        s->add(Knob::ints("split_kv", {1, 2, 4, 8, 16, 32, 64, 128}, split_default,
                          "parts each block's key range is cut into (separate blocks, merged by a combine kernel)"));
    }

    const Problem prob = p;
    if (t.tensor_cores) {
        // mma.sync tiles are 16 rows: each warp owns one or two 16-row slices.
        s->require("rows_per_warp_16_or_32", [](const Config& c) {
            const std::int64_t rows = c.get_int("q_tile") / c.get_int("warps");
            return rows * c.get_int("warps") == c.get_int("q_tile") && (rows == 16 || rows == 32);
        });
        // O and S accumulators (f32) per thread: slices x (head_dim + k_tile) / 2 registers.
        s->require("accumulators_fit_registers", [d](const Config& c) {
            const std::int64_t slices = c.get_int("q_tile") / c.get_int("warps") / 16;
            return slices * (d + c.get_int("k_tile")) / 2 <= 160;
        });
        s->require("p_rounding_within_tolerance", [prob](const Config& c) {
            return c.get_int("p_split") != 0 || effective_tolerance(prob) >= single_rounding_tolerance(prob);
        });
    } else {
        // The generic kernel keeps each thread's share of O in registers: an equal share, at most 64.
        s->require("o_elements_divide_threads", [d, t](const Config& c) {
            const std::int64_t threads = c.get_int("warps") * t.wave, elements = c.get_int("q_tile") * d;
            return elements % threads == 0 && elements / threads <= 64;
        });
    }
    s->require("shared_memory_limit", [prob, t](const Config& c) {
        return shared_bytes(Shape::of(prob, c), t) <= t.max_shared_bytes;
    });
    if (dec) {
        // Decode rows are few: a block much taller than a unit's rows computes padding.
        s->require("q_tile_within_rows", [a](const Config& c) {
            const bool pack = c.has("gqa_pack") && c.get_int("gqa_pack") != 0;
            return c.get_int("q_tile") <= std::max<std::int64_t>(16, round_up(unit_rows(a, pack), 16));
        });
        s->require("split_leaves_a_tile_per_split", [a](const Config& c) {
            return c.get_int("split_kv") <= (a.kv_len + c.get_int("k_tile") - 1) / c.get_int("k_tile");
        });
    }
    return s;
}

Launch launch(const Problem& p, const Config& c, const Target& t) {
    const AttentionDims a = attention_dims(p);
    const Shape s = Shape::of(p, c);
    const std::int64_t rows = unit_rows(a, s.gqa_pack);
    const std::int64_t units = s.gqa_pack ? a.kv_heads : a.heads;
    Launch l;
    l.grid[0] = unsigned((rows + s.q_tile - 1) / s.q_tile);
    l.grid[1] = unsigned(a.batch * units);
    l.grid[2] = unsigned(s.split_kv);
    l.block = unsigned(s.threads(t));
    l.shared_bytes = unsigned(shared_bytes(s, t));
    l.splits = s.split_kv;
    auto name = [](const std::string& kernel, std::initializer_list<long long> args) {
        std::string out = "libtune::" + kernel + "<";
        for (long long v : args) out += std::to_string(v) + ",";
        out.back() = '>';
        return out;
    };
    const int split = s.split_kv > 1 ? 1 : 0;
    l.instance = t.tensor_cores ? name(t.kernel, {s.element, s.head_dim, s.q_tile, s.k_tile, s.warps, s.stages,
                                                  s.gqa_pack, split, s.p_split})
                                : name(t.kernel, {s.element, s.head_dim, s.q_tile, s.k_tile, s.warps, s.gqa_pack, split});
    if (split) {
        const std::int64_t out_rows = a.batch * a.heads * a.q_len;
        l.workspace_bytes = std::size_t(s.split_kv) * std::size_t(out_rows) * std::size_t(a.head_dim + 1) * sizeof(float);
        const std::int64_t blocks = (out_rows * a.head_dim + 255) / 256;
        require(blocks < (1ll << 31), "gpu attention: combine grid too large for " + shape_key(p));
        l.combine_blocks = unsigned(blocks);
        l.combine_instance = name("attention_combine", {s.head_dim});
    }
    return l;
}

libtune::AttentionParams params(const AttentionDims& a, const OpArgs& args, const Launch& l, void* workspace) {
    const std::size_t inputs = a.page > 0 ? 4 : 3;
    require(args.inputs.size() == inputs && args.outputs.size() == 2,
            "gpu attention: expects inputs {Q, K, V} (and the block table when paged) and outputs {O, LSE}");
    require(l.splits == 1 || workspace != nullptr, "gpu attention: split-KV needs its workspace");
    libtune::AttentionParams p{};
    p.q = args.inputs[0];
    p.k = args.inputs[1];
    p.v = args.inputs[2];
    p.o = static_cast<float*>(args.outputs[0]);
    p.lse = static_cast<float*>(args.outputs[1]);
    if (l.splits > 1) {
        p.partial_o = static_cast<float*>(workspace);
        p.partial_lse = p.partial_o + std::size_t(l.splits) * std::size_t(a.batch * a.heads * a.q_len * a.head_dim);
    }
    p.batch = a.batch, p.heads = a.heads, p.kv_heads = a.kv_heads, p.q_len = a.q_len, p.kv_len = a.kv_len;
    p.window = a.window;
    p.causal = a.causal ? 1 : 0;
    p.splits = l.splits;
    p.scale_log2 = float(a.scale / std::log(2.0));  // the problem's scale, in base 2
    if (a.page > 0) {
        p.block_table = static_cast<const int*>(args.inputs[3]);
        p.page = a.page;
        p.pages_per_seq = a.pages_per_sequence();
    }
    return p;
}

}  // namespace tune::gpu_attention
