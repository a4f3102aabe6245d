// Glue between stored measurements and the models: training sets from measurements, models
// to and from the store (feature schema checked), the feature view a search strategy uses,
// and scoring a few candidate configs of one problem (the dispatcher's unseen shapes).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>

#include "tune/cost_model/features.hpp"
#include "tune/cost_model/models.hpp"
#include "tune/cost_model/unseen.hpp"
#include "tune/db/database.hpp"

namespace tune::cost_model {

inline constexpr const char* kGbdtName = "gbdt";
inline constexpr const char* kGbdtFormat = "xgboost-json";

using SpaceOf = std::function<std::shared_ptr<const Space>(const Problem&)>;

// The ok measurements as a training set: features from each problem's space on `device`,
// columns the union of every featurizer's (missing = NaN), target log(median / the shape's
// fastest median) capped at kTargetCap (configs compared within their shape).
Dataset training_set(std::span<const Measurement> rows, const SpaceOf& space_of, const DeviceInfo& device);

StoredModel to_stored(const GbdtModel& model, const std::string& template_name, const std::string& device_id,
                      std::int64_t trained_rows);
// Throws tune::Error when the stored model's feature schema or format is not this build's.
std::shared_ptr<const GbdtModel> from_stored(const StoredModel& stored);

// What a model-guided strategy sees of the problem it tunes: named feature columns and the
// features of a config in that order, plus a model of other shapes (transfer) when known.
struct SearchContext {
    std::vector<std::string> names;
    std::function<std::vector<double>(const Config&)> features;
    std::shared_ptr<const GbdtModel> prior;  // null: no transfer
};
SearchContext make_search_context(const Problem& p, std::shared_ptr<const Space> space, const DeviceInfo& device,
                                  std::shared_ptr<const GbdtModel> prior);

// The prior for tuning `p` with template `t`: the stored model when there is one, else one
// trained on the store's ok measurements of other shapes (same template version and device),
// else null when there are fewer than `min_rows` of them.
std::shared_ptr<const GbdtModel> transfer_prior(const Database& db, const Problem& p, const std::string& template_name,
                                                const std::string& template_version, const SpaceOf& space_of,
                                                const DeviceInfo& device, std::size_t min_rows = 32);

// Predicted score (lower is faster) of each candidate config of p.
std::vector<double> predict_configs(const GbdtModel& model, const Problem& p, std::shared_ptr<const Space> space,
                                    const DeviceInfo& device, std::span<const Config> configs);

// Scores candidate configs of the problems that share one space: the featurizer and the mapping
// onto the model's columns are built once and reused for every problem (the dispatcher keeps
// one per space, so a lookup pays only for the problem's features and the trees).
class ConfigScorer {
public:
    ConfigScorer(std::shared_ptr<const GbdtModel> model, const Problem& p, std::shared_ptr<const Space> space,
                 const DeviceInfo& device);
    // Re-targets to p (of the op and space given at construction).
    void set_problem(const Problem& p);
    // Predicted score of a config on the current problem, without allocating when its inputs
    // were read beforehand (inputs()).
    double operator()(const ConfigInputs& in);
    double operator()(const Config& c) { return (*this)(featurizer_.inputs(c)); }
    ConfigInputs inputs(const Config& c) const { return featurizer_.inputs(c); }
    // Predicted score of each config on p.
    std::vector<double> operator()(const Problem& p, std::span<const Config* const> configs);

private:
    std::shared_ptr<const GbdtModel> model_;
    Featurizer featurizer_;
    std::vector<int> map_;
    std::vector<double> values_, row_;  // reused between calls
};

}  // namespace tune::cost_model
