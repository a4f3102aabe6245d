#include "tune/cost_model/training.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "tune/error.hpp"

namespace tune::cost_model {

Dataset training_set(std::span<const Measurement> rows, const SpaceOf& space_of, const DeviceInfo& device) {
    // One featurizer per distinct problem; columns are the union of their names, sorted.
    std::map<std::string, std::unique_ptr<Featurizer>> featurizers;
    std::map<std::string, int> columns;
    for (const auto& m : rows) {
        if (m.status != Status::ok) continue;
        auto& f = featurizers[shape_key(m.problem)];
        if (!f) {
            f = std::make_unique<Featurizer>(m.problem, space_of(m.problem), device);
            for (const auto& n : f->names()) columns.emplace(n, 0);
        }
    }
    Dataset data;
    for (auto& [name, index] : columns) {
        index = static_cast<int>(data.names.size());
        data.names.push_back(name);
    }
    std::map<std::string, std::vector<int>> maps;
    for (const auto& [key, f] : featurizers) maps[key] = column_map(f->names(), data.names);
    // Targets relative to the shape's fastest config, log(t / best), capped at kTargetCap: the
    // trees learn how configs compare within a shape (all that ranking needs), not how fast
    // shapes are against each other, and a pathological or contention-hit row (10x, 100x)
    // counts as "bad" without pulling the squared loss towards itself.
    std::map<std::string, double> best;
    for (const auto& m : rows) {
        if (m.status != Status::ok) continue;
        auto [it, fresh] = best.try_emplace(shape_key(m.problem), ranking_time(m.stats));
        if (!fresh) it->second = std::min(it->second, ranking_time(m.stats));
    }
    for (const auto& m : rows) {
        if (m.status != Status::ok) continue;
        const std::string key = shape_key(m.problem);
        data.rows.push_back(remap((*featurizers[key])(m.config), maps[key]));
        data.targets.push_back(relative_loss(ranking_time(m.stats), best[key]));
    }
    return data;
}

StoredModel to_stored(const GbdtModel& model, const std::string& template_name, const std::string& device_id,
                      std::int64_t trained_rows) {
    require(!model.has_prior(), "cost model: a model trained on top of a prior cannot be stored alone");
    StoredModel s;
    s.name = kGbdtName;
    s.template_name = template_name;
    s.device_id = device_id;
    s.feature_schema = kFeatureSchema;
    s.format = kGbdtFormat;
    s.features = model.names();
    s.body = model.save_json();
    s.trained_rows = trained_rows;
    return s;
}

std::shared_ptr<const GbdtModel> from_stored(const StoredModel& stored) {
    require(stored.feature_schema == kFeatureSchema,
            "cost model '" + stored.name + "' for '" + stored.template_name + "' uses feature schema " +
                std::to_string(stored.feature_schema) + " but this libtune computes schema " +
                std::to_string(kFeatureSchema) + "; retrain it with 'tune model-train'");
    require(stored.format == kGbdtFormat, "cost model '" + stored.name + "': unknown format '" + stored.format +
                                              "' (expected " + kGbdtFormat + ")");
    return GbdtModel::load_json(stored.body, stored.features);
}

SearchContext make_search_context(const Problem& p, std::shared_ptr<const Space> space, const DeviceInfo& device,
                                  std::shared_ptr<const GbdtModel> prior) {
    auto f = std::make_shared<Featurizer>(p, std::move(space), device);
    SearchContext ctx;
    ctx.prior = std::move(prior);
    if (!ctx.prior) {
        ctx.names = f->names();
        ctx.features = [f](const Config& c) { return (*f)(c); };
        return ctx;
    }
    // The prior's columns first (it reads those), then this space's columns it lacks: knobs
    // or labels it was never trained on, which this run's own trees can still learn.
    ctx.names = ctx.prior->names();
    for (const auto& name : f->names())
        if (std::find(ctx.prior->names().begin(), ctx.prior->names().end(), name) == ctx.prior->names().end())
            ctx.names.push_back(name);
    auto map = std::make_shared<std::vector<int>>(column_map(f->names(), ctx.names));
    ctx.features = [f, map](const Config& c) { return remap((*f)(c), *map); };
    return ctx;
}

std::shared_ptr<const GbdtModel> transfer_prior(const Database& db, const Problem& p, const std::string& template_name,
                                                const std::string& template_version, const SpaceOf& space_of,
                                                const DeviceInfo& device, std::size_t min_rows) {
    if (auto stored = db.load_model(kGbdtName, template_name, device.id())) return from_stored(*stored);
    MeasurementFilter filter{"", device.id(), template_name, template_version, Status::ok};
    auto rows = db.query(filter);
    const std::string key = shape_key(p);
    std::erase_if(rows, [&](const Measurement& m) { return shape_key(m.problem) == key; });
    if (rows.size() < min_rows) return nullptr;
    return GbdtModel::train(training_set(rows, space_of, device));
}

std::vector<double> predict_configs(const GbdtModel& model, const Problem& p, std::shared_ptr<const Space> space,
                                    const DeviceInfo& device, std::span<const Config> configs) {
    // The scorer shares the model; this one is borrowed for the call.
    std::shared_ptr<const GbdtModel> borrowed(std::shared_ptr<const GbdtModel>{}, &model);
    ConfigScorer scorer(borrowed, p, std::move(space), device);
    std::vector<const Config*> pointers;
    for (const auto& c : configs) pointers.push_back(&c);
    return scorer(p, pointers);
}

ConfigScorer::ConfigScorer(std::shared_ptr<const GbdtModel> model, const Problem& p, std::shared_ptr<const Space> space,
                           const DeviceInfo& device)
    : model_(std::move(model)), featurizer_(p, std::move(space), device) {
    require(model_ != nullptr, "config scorer: null model");
    map_ = column_map(featurizer_.names(), model_->names());
    values_.resize(featurizer_.names().size());
    row_.resize(map_.size());
}

void ConfigScorer::set_problem(const Problem& p) { featurizer_.set_problem(p); }

double ConfigScorer::operator()(const ConfigInputs& in) {
    featurizer_.write(in, values_);
    for (std::size_t j = 0; j < map_.size(); ++j)
        row_[j] = map_[j] >= 0                ? values_[std::size_t(map_[j])]
                  : map_[j] == kAbsentLabel ? 0.0
                                            : std::numeric_limits<double>::quiet_NaN();
    return model_->predict_one(row_);
}

std::vector<double> ConfigScorer::operator()(const Problem& p, std::span<const Config* const> configs) {
    set_problem(p);
    std::vector<double> out;
    out.reserve(configs.size());
    for (const Config* c : configs) out.push_back((*this)(*c));
    return out;
}

}  // namespace tune::cost_model
