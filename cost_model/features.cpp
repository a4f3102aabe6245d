#include "tune/cost_model/features.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tune/error.hpp"

namespace tune::cost_model {
namespace {

double log2p(double x) { return std::log2(std::max(x, 1.0)); }
double ceil_div(double a, double b) { return std::ceil(a / b); }

// The value of a dim named `name`, or 0 when the op has no such dim.
std::int64_t dim_or_zero(const Problem& p, std::string_view name) {
    auto specs = dim_specs(p.op);
    for (std::size_t d = 0; d < specs.size(); ++d)
        if (specs[d].name == name) return p.dims[d];
    return 0;
}

// Operand and result bytes each touched once: the compulsory traffic.
double bytes_moved(const Problem& p) {
    const double m = double(dim_or_zero(p, "m")), n = double(dim_or_zero(p, "n")), k = double(dim_or_zero(p, "k"));
    const double in = double(dtype_bytes(p.dtype)), batch = double(std::max<std::int64_t>(1, dim_or_zero(p, "batch")));
    if (p.op == OpKind::gemm) return batch * ((m * k + k * n) * in + m * n * 4.0);
    if (p.op == OpKind::swiglu) return (m * k + 2 * n * k) * in + m * n * 4.0;
    double total = 1;  // attention and others: the product of sizes stands in for the traffic
    auto specs = dim_specs(p.op);
    for (std::size_t d = 0; d < specs.size(); ++d)
        if (specs[d].kind == DimKind::size) total *= double(p.dims[d]);
    return total * in;
}

// Register tile "MRxNR" at the end of a micro-kernel label ("avx512_8x32"); {0, 0} if absent.
std::pair<int, int> tile_of(const std::string& label) {
    auto x = label.rfind('x');
    auto us = label.rfind('_', x);
    if (x == std::string::npos || us == std::string::npos) return {0, 0};
    try {
        return {std::stoi(label.substr(us + 1, x - us - 1)), std::stoi(label.substr(x + 1))};
    } catch (const std::exception&) {
        return {0, 0};
    }
}

// f32 lanes of one vector register for the label's ISA prefix.
double lanes_of(const std::string& label) { return label.rfind("avx2", 0) == 0 ? 8.0 : 16.0; }

const char* const kGemmNames[] = {
    "mr", "nr", "accumulator_regs", "lane_fill_n", "tile_fill_m", "log2_tiles", "block_fill_m", "block_fill_n",
    "block_fill_k", "log2_blocks", "c_passes", "a_block_vs_l2", "a_panel_vs_l1", "b_panel_vs_l1", "b_block_vs_l2",
    "b_block_vs_l3", "threads_vs_cores", "waves", "thread_balance", "a_repacks", "log2_pack_bytes_per_flop",
    "tile_fill", "block_fill", "edge_tiles", "idle_threads", "log2_tiles_per_thread", "log2_m_blocks", "log2_n_blocks",
    "log2_tiles_per_block"};

}  // namespace

double target_of(const Problem& p, double seconds) {
    require(seconds > 0 && std::isfinite(seconds), "cost model: time must be positive and finite");
    return std::log(seconds / std::max(flop_count(p), 1.0));
}

Featurizer::Featurizer(const Problem& p, std::shared_ptr<const Space> space, const DeviceInfo& device)
    : problem_(p), space_(std::move(space)), device_(device) {
    require(space_ != nullptr, "featurizer: null space");
    auto names = std::make_shared<std::vector<std::string>>();
    for (const auto& spec : dim_specs(p.op))
        names->push_back((spec.kind == DimKind::size ? "log2_" : "") + std::string(spec.name));
    for (const char* name : {"dtype_bytes", "log2_flops", "log2_bytes", "log2_intensity", "cores", "log2_l1", "log2_l2",
                             "log2_l3"})
        names->push_back(name);
    for (const Knob& k : space_->knobs()) {
        if (k.kind == KnobKind::categorical)
            for (const auto& v : k.values) names->push_back("knob:" + k.name + "=" + to_string(v));
        else
            names->push_back("knob:" + k.name);
    }
    gemm_ = (p.op == OpKind::gemm || p.op == OpKind::swiglu) && space_->knob("ukernel") && space_->knob("mc") &&
            space_->knob("kc") && space_->knob("nc");
    if (gemm_)
        for (const char* n : kGemmNames) names->push_back(n);
    names_ = std::move(names);
    set_problem(p);
}

void Featurizer::set_problem(const Problem& p) {
    require(p.op == problem_.op, "featurizer: set_problem needs a problem of the same op");
    problem_ = p;
    problem_values_.clear();
    auto specs = dim_specs(p.op);
    for (std::size_t d = 0; d < specs.size(); ++d)
        problem_values_.push_back(specs[d].kind == DimKind::size ? log2p(double(p.dims[d])) : double(p.dims[d]));
    const double flops = std::max(flop_count(p), 1.0), bytes = bytes_moved(p);
    m_ = double(dim_or_zero(p, "m"));
    n_ = double(dim_or_zero(p, "n"));
    k_ = double(dim_or_zero(p, "k"));
    flops_ = flops;
    for (double v : {double(dtype_bytes(p.dtype)), log2p(flops), log2p(bytes), std::log2(flops / bytes),
                     double(device_.cores), log2p(double(device_.l1d_bytes)), log2p(double(device_.l2_bytes)),
                     log2p(double(device_.l3_bytes))})
        problem_values_.push_back(v);
}

ConfigInputs Featurizer::inputs(const Config& c) const {
    ConfigInputs in;
    for (const Knob& k : space_->knobs()) {
        const KnobValue* v = c.find(k.name);
        require(v != nullptr, "featurizer: config '" + c.text() + "' lacks knob '" + k.name + "'");
        if (k.kind == KnobKind::categorical) {
            for (const auto& label : k.values) in.knob_values.push_back(label == *v ? 1.0 : 0.0);
        } else {
            require(std::holds_alternative<std::int64_t>(*v), "featurizer: knob '" + k.name + "' is not a number");
            in.knob_values.push_back(std::log2(1.0 + double(std::max<std::int64_t>(0, std::get<std::int64_t>(*v)))));
        }
    }
    if (!gemm_) return in;
    const std::string& label = c.get_str("ukernel");
    auto [mr, nr] = tile_of(label);
    in.mr = std::max(1, mr);
    in.nr = std::max(1, nr);
    in.lanes = lanes_of(label);
    in.mc = double(c.get_int("mc"));
    in.nc = double(c.get_int("nc"));
    in.kc = double(c.get_int("kc"));
    in.threads = c.has("threads") ? double(c.get_int("threads")) : 1.0;
    in.split_n = c.has("split") && c.get_str("split") == "n";
    in.pack_a = c.has("pack_a") ? double(c.get_int("pack_a")) : 1.0;
    in.pack_b = c.has("pack_b") ? double(c.get_int("pack_b")) : 1.0;
    return in;
}

void Featurizer::write(const ConfigInputs& in, std::span<double> out) const {
    require(out.size() == names_->size() &&
                problem_values_.size() + in.knob_values.size() + (gemm_ ? std::size(kGemmNames) : 0) == out.size(),
            "featurizer: the row or the config inputs do not match the feature columns");
    double* o = std::copy(problem_values_.begin(), problem_values_.end(), out.data());
    o = std::copy(in.knob_values.begin(), in.knob_values.end(), o);
    if (gemm_) gemm_features(in, o);
}

std::vector<double> Featurizer::operator()(const Config& c) const {
    std::vector<double> out(names_->size());
    write(inputs(c), out);
    return out;
}

// BLIS-style blocking: C is cut into mc x nc blocks over kc-deep passes; an MR x NR register
// tile sweeps each block; threads share the tiles along `split`.
void Featurizer::gemm_features(const ConfigInputs& in, double* out) const {
    const double m = m_, n = n_, k = k_, flops = flops_;
    const double mr = in.mr, nr = in.nr, lanes = in.lanes, threads = in.threads, pack_a = in.pack_a,
                 pack_b = in.pack_b;
    const bool split_n = in.split_n;
    const double eb = double(dtype_bytes(problem_.dtype));
    const double mc = std::min(in.mc, ceil_div(m, mr) * mr);
    const double nc = std::min(in.nc, ceil_div(n, nr) * nr);
    const double kc = std::min(in.kc, k);
    const double l1 = double(std::max<std::int64_t>(device_.l1d_bytes, 1));
    const double l2 = double(std::max<std::int64_t>(device_.l2_bytes, 1));
    const double l3 = double(std::max<std::int64_t>(device_.l3_bytes, 1));
    const double units = split_n ? ceil_div(n, nr) : ceil_div(m, mr);
    const double waves = ceil_div(units, threads);
    const double pack_bytes = (pack_a * m * k * ceil_div(n, nc) + pack_b * k * n) * eb;
    // Padding waste and parallel slack of this config on this shape: the work the register
    // tiles and cache blocks cover beyond the problem, the share of tiles that run the slower
    // edge path, and threads that get no tile.
    const double tiles_m = ceil_div(m, mr), tiles_n = ceil_div(n, nr), tiles = tiles_m * tiles_n;
    const double tile_fill = (m * n) / (tiles * mr * nr);
    const double block_fill = (m * n * k) / (ceil_div(m, mc) * mc * ceil_div(n, nc) * nc * ceil_div(k, kc) * kc);
    const double edge = (std::fmod(m, mr) != 0 ? tiles_n : 0) + (std::fmod(n, nr) != 0 ? tiles_m : 0) -
                        (std::fmod(m, mr) != 0 && std::fmod(n, nr) != 0 ? 1 : 0);
    for (double v : {mr, nr, mr * nr / lanes, n / (tiles_n * nr), m / (tiles_m * mr), log2p(tiles),
                     m / (ceil_div(m, mc) * mc), n / (ceil_div(n, nc) * nc), k / (ceil_div(k, kc) * kc),
                     log2p(ceil_div(m, mc) * ceil_div(n, nc) * ceil_div(k, kc)), ceil_div(k, kc),
                     std::log2(mc * kc * eb / l2), std::log2(mr * kc * eb / l1), std::log2(kc * nr * eb / l1),
                     std::log2(kc * nc * eb / l2), std::log2(kc * nc * eb / l3), threads / std::max(1, device_.cores),
                     waves, units / (waves * threads), ceil_div(n, nc), std::log2(1.0 + pack_bytes / flops), tile_fill,
                     block_fill, edge / tiles, std::max(0.0, threads - units) / threads, std::log2(tiles / threads),
                     log2p(ceil_div(m, mc)), log2p(ceil_div(n, nc)), log2p(ceil_div(mc, mr) * ceil_div(nc, nr))})
        *out++ = v;
}

std::vector<int> column_map(std::span<const std::string> from, std::span<const std::string> to) {
    std::vector<int> map(to.size(), -1);
    for (std::size_t j = 0; j < to.size(); ++j) {
        auto it = std::find(from.begin(), from.end(), to[j]);
        if (it != from.end()) map[j] = static_cast<int>(it - from.begin());
        // A one-hot column of a label this space lacks: that label is never chosen here.
        else if (to[j].starts_with("knob:") && to[j].find('=') != std::string::npos) map[j] = kAbsentLabel;
    }
    return map;
}

std::vector<double> remap(std::span<const double> values, std::span<const int> map) {
    std::vector<double> out(map.size(), std::numeric_limits<double>::quiet_NaN());
    for (std::size_t j = 0; j < map.size(); ++j) {
        if (map[j] >= 0) out[j] = values[static_cast<std::size_t>(map[j])];
        if (map[j] == kAbsentLabel) out[j] = 0.0;
    }
    return out;
}

}  // namespace tune::cost_model
