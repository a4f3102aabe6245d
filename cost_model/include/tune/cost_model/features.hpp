// Features of (problem, config, device) for the learned cost models: problem dims, knob values
// and derived analytic quantities (FLOPs, bytes, intensity, tiles and waves, working sets vs
// caches, padding waste, vector-lane use). Columns are named, so a model trained on one space
// reads another's features by name; the schema number is stored with every model.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tune/device.hpp"
#include "tune/problem.hpp"
#include "tune/space.hpp"

namespace tune::cost_model {

// Bump when a column's meaning changes: stored models of another schema are then refused.
inline constexpr int kFeatureSchema = 2;  // 2: padding waste and thread slack columns

// The target every model learns: log(seconds per FLOP), comparable across shapes; ranking
// configs of one shape by it is ranking them by time.
double target_of(const Problem& p, double seconds);

// What a config contributes to its features, read from the config once: a config scored on
// many problems (the dispatcher's candidates) then skips the knob lookups by name.
struct ConfigInputs {
    std::vector<double> knob_values;  // the knob columns (one-hot labels, log2 numbers)
    // The blocking knobs of a GEMM space: register tile, its f32 lanes, cache blocks, threads.
    double mr = 1, nr = 1, lanes = 16, mc = 0, nc = 0, kc = 0, threads = 1, pack_a = 1, pack_b = 1;
    bool split_n = false;
};

class Featurizer {
public:
    Featurizer(const Problem& p, std::shared_ptr<const Space> space, const DeviceInfo& device);

    const std::vector<std::string>& names() const { return *names_; }
    // One value per name, in names() order.
    std::vector<double> operator()(const Config& c) const;
    // The same in two steps: a config's inputs (throws tune::Error naming a knob the config
    // lacks or that has the wrong type), then its row on the current problem written to `out`
    // (names().size() values), without allocating.
    ConfigInputs inputs(const Config& c) const;
    void write(const ConfigInputs& in, std::span<double> out) const;
    // Re-targets to another problem of the same op whose space has the same knobs (e.g. the
    // same space object): the column names stay, the problem's own columns are recomputed.
    void set_problem(const Problem& p);

private:
    void gemm_features(const ConfigInputs& in, double* out) const;

    Problem problem_;
    std::shared_ptr<const Space> space_;
    DeviceInfo device_;
    std::vector<double> problem_values_;  // the config-independent columns, computed per problem
    double m_ = 0, n_ = 0, k_ = 0, flops_ = 1;  // GEMM dims and FLOPs of the problem
    std::shared_ptr<const std::vector<std::string>> names_;
    bool gemm_ = false;
};

// Maps a featurizer's columns onto a model's: index into the featurizer's values per model
// column, -1 when the featurizer lacks it (the value is missing: NaN), or kAbsentLabel for a
// one-hot column of a label the featurizer's space does not have (the value is 0).
inline constexpr int kAbsentLabel = -2;
std::vector<int> column_map(std::span<const std::string> from, std::span<const std::string> to);
std::vector<double> remap(std::span<const double> values, std::span<const int> map);

}  // namespace tune::cost_model
