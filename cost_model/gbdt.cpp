// GbdtModel over XGBoost's C API: single-threaded and seeded, so training is deterministic.
// Every XGBoost call runs with one OpenMP thread (call): XGBoost opens OpenMP regions
// of its own before the booster's nthread applies (loading a model does), and an OpenMP pool
// started in the host would spin on its cores after each region; with libgomp it also breaks
// OpenMP in any process the host forks later.
#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "tune/cost_model/models.hpp"
#include "omp_threads.hpp"
#include "tune/error.hpp"

namespace tune::cost_model {
namespace {

// One XGBoost C API call, on one OpenMP thread; a failure throws with XGBoost's message
// (without the native stack trace it appends, which says nothing to a user).
template <class F>
void call(const char* what, F&& f) {
    if (detail::with_omp_threads(1, std::forward<F>(f)) == 0) return;
    std::string message = XGBGetLastError();
    if (auto trace = message.find("\nStack trace:"); trace != std::string::npos) message.resize(trace);
    throw Error(std::string("cost model: XGBoost ") + what + " failed: " + message);
}

struct Matrix {
    DMatrixHandle h = nullptr;
    Matrix(std::span<const std::vector<double>> rows, std::size_t cols) {
        std::vector<float> flat;
        flat.reserve(rows.size() * cols);
        for (const auto& r : rows) {
            require(r.size() == cols, "cost model: a feature row has " + std::to_string(r.size()) + " values, expected " +
                                          std::to_string(cols));
            for (double v : r) flat.push_back(static_cast<float>(v));
        }
        call("DMatrix", [&] { return XGDMatrixCreateFromMat(flat.data(), rows.size(), cols, std::nanf(""), &h); });
    }
    ~Matrix() { XGDMatrixFree(h); }
    Matrix(const Matrix&) = delete;
    Matrix& operator=(const Matrix&) = delete;
};

}  // namespace

struct GbdtModel::Handle {
    BoosterHandle h = nullptr;
    // `cache`: the training matrix, or none for a booster that loads a stored model.
    explicit Handle(DMatrixHandle* cache = nullptr) {
        call("configuration", [&] { return XGBSetGlobalConfig(R"({"verbosity":0})"); });
        call("create", [&] { return XGBoosterCreate(cache, cache ? 1 : 0, &h); });
    }
    ~Handle() { XGBoosterFree(h); }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    void set(const char* key, const std::string& value) { call(key, [&] { return XGBoosterSetParam(h, key, value.c_str()); }); }
    std::string save_json() const {
        bst_ulong len = 0;
        const char* buf = nullptr;
        call("saving", [&] { return XGBoosterSaveModelToBuffer(h, R"({"format":"json"})", &len, &buf); });
        return std::string(buf, len);
    }
};

GbdtModel::~GbdtModel() = default;

std::shared_ptr<const GbdtModel> GbdtModel::train(const Dataset& data, const GbdtParams& params,
                                                  std::shared_ptr<const GbdtModel> prior) {
    require(!data.rows.empty() && data.rows.size() == data.targets.size(),
            "cost model: training needs rows with one target each");
    require(!prior || (prior->names().size() <= data.names.size() &&
                       std::equal(prior->names().begin(), prior->names().end(), data.names.begin())),
            "cost model: the prior's feature columns must lead the data's");
    std::vector<float> labels(data.targets.begin(), data.targets.end());
    if (prior) {
        auto base = prior->predict(data.rows);
        for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<float>(data.targets[i] - base[i]);
    }
    for (float y : labels) require(std::isfinite(y), "cost model: a training target is not finite");
    const double mean = std::accumulate(labels.begin(), labels.end(), 0.0) / double(labels.size());

    Matrix x(data.rows, data.names.size());
    call("labels", [&] { return XGDMatrixSetFloatInfo(x.h, "label", labels.data(), labels.size()); });
    std::shared_ptr<GbdtModel> model(new GbdtModel());
    model->names_ = data.names;
    model->prior_ = std::move(prior);
    // The booster lives only for the training: XGBoost keeps per-thread state for each booster
    // that it frees at thread exit, so a booster destroyed later (a model held by a static
    // object) would touch freed memory. The model keeps the trees as JSON and flattened.
    Handle b(&x.h);
    b.set("nthread", "1");
    b.set("seed", "0");
    b.set("tree_method", "exact");
    b.set("objective", "reg:squarederror");
    b.set("base_score", std::to_string(mean));
    b.set("max_depth", std::to_string(params.max_depth));
    b.set("eta", std::to_string(params.eta));
    b.set("min_child_weight", std::to_string(params.min_child_weight));
    b.set("lambda", std::to_string(params.lambda));
    for (int i = 0; i < params.rounds; ++i) call("training", [&] { return XGBoosterUpdateOneIter(b.h, i, x.h); });
    model->json_ = b.save_json();
    model->flatten();
    return model;
}

std::shared_ptr<const GbdtModel> GbdtModel::load_json(const std::string& json, std::vector<std::string> names) {
    require(!names.empty(), "cost model: a stored model names no feature columns");
    std::shared_ptr<GbdtModel> model(new GbdtModel());
    model->names_ = std::move(names);
    Handle b;  // only to check the text: XGBoost must accept it
    call("loading a stored model", [&] { return XGBoosterLoadModelFromBuffer(b.h, json.data(), json.size()); });
    bst_ulong features = 0;
    call("reading the feature count", [&] { return XGBoosterGetNumFeature(b.h, &features); });
    model->json_ = json;
    require(features == model->names_.size(), "cost model: the stored trees read " + std::to_string(features) +
                                                  " features but the model names " +
                                                  std::to_string(model->names_.size()));
    model->flatten();
    return model;
}

void GbdtModel::flatten() {
    // XGBoost's JSON model: learner.learner_model_param.base_score and, per tree, parallel
    // arrays of children, split features and conditions (a leaf's condition is its value).
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(json_);
        const auto& learner = j.at("learner");
        const auto& base = learner.at("learner_model_param").at("base_score");
        base_score_ = base.is_string() ? std::stof(base.get<std::string>()) : base.get<float>();
        require(std::isfinite(base_score_) && std::abs(base_score_) <= kMaxValue,
                "cost model: the base score is not a finite value of at most " + std::to_string(kMaxValue));
        const auto& booster = learner.at("gradient_booster");
        require(booster.at("name") == "gbtree", "cost model: only tree boosters are supported");
        nodes_.clear();
        roots_.clear();
        for (const auto& tree : booster.at("model").at("trees")) {
            const auto& left = tree.at("left_children");
            const auto& right = tree.at("right_children");
            const auto& feature = tree.at("split_indices");
            const auto& cond = tree.at("split_conditions");
            const auto& missing = tree.at("default_left");
            const std::size_t n = left.size();
            require(n > 0 && right.size() == n && feature.size() == n && cond.size() == n && missing.size() == n,
                    "cost model: a tree's node arrays differ in length");
            const auto offset = static_cast<std::int32_t>(nodes_.size());
            roots_.push_back(static_cast<std::uint32_t>(offset));
            for (std::size_t i = 0; i < n; ++i) {
                Node node;
                const int l = left[i].get<int>(), r = right[i].get<int>();
                node.value = cond[i].get<float>();
                require(std::isfinite(node.value), "cost model: a tree holds a value that is not finite");
                if (l >= 0) {
                    require(std::size_t(l) < n && r >= 0 && std::size_t(r) < n, "cost model: a tree child is out of range");
                    node.left = offset + l;
                    node.right = offset + r;
                    node.feature = feature[i].get<std::uint32_t>();
                    require(node.feature < names_.size(), "cost model: a split reads feature " +
                                                              std::to_string(node.feature) + " of " +
                                                              std::to_string(names_.size()));
                    node.missing_left = missing[i].is_boolean() ? missing[i].get<bool>() : missing[i].get<int>() != 0;
                }
                nodes_.push_back(node);
            }
            require_tree(offset, n);
        }
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("cost model: cannot read the trees of the model: ") + e.what());
    } catch (const std::logic_error& e) {  // stof
        throw Error(std::string("cost model: cannot read the model's base score: ") + e.what());
    }
}

void GbdtModel::require_tree(std::int32_t offset, std::size_t n) const {
    // predict_one follows children without a step limit: each node must be reached once from
    // the root (a damaged store can make a child point back up, and the walk would never end).
    std::vector<bool> reached(n, false);
    std::vector<std::int32_t> pending{offset};
    while (!pending.empty()) {
        const Node& node = nodes_[std::size_t(pending.back())];
        require(!reached[std::size_t(pending.back() - offset)], "cost model: a tree's nodes form a cycle or share a child");
        reached[std::size_t(pending.back() - offset)] = true;
        pending.pop_back();
        if (node.left < 0) {
            // A sum of many leaves stays finite only while each is of sane size (the targets
            // are log time ratios; a leaf this large is damage).
            require(std::abs(node.value) <= kMaxValue,
                    "cost model: a leaf value exceeds " + std::to_string(kMaxValue));
            continue;
        }
        pending.push_back(node.left);
        pending.push_back(node.right);
    }
}

double GbdtModel::predict_one(std::span<const double> row) const {
    require(row.size() >= names_.size(), "cost model: a feature row has " + std::to_string(row.size()) +
                                             " values, expected " + std::to_string(names_.size()));
    // As XGBoost does: single-precision features and sums, NaN takes the default branch.
    float sum = base_score_;
    for (std::uint32_t root : roots_) {
        const Node* node = &nodes_[root];
        while (node->left >= 0) {
            const float x = static_cast<float>(row[node->feature]);
            const bool go_left = std::isnan(x) ? node->missing_left : x < node->value;
            node = &nodes_[std::size_t(go_left ? node->left : node->right)];
        }
        sum += node->value;
    }
    return (prior_ ? prior_->predict_one(row) : 0.0) + double(sum);
}

std::vector<double> GbdtModel::predict(std::span<const std::vector<double>> rows) const {
    std::vector<double> out;
    out.reserve(rows.size());
    for (const auto& r : rows) out.push_back(predict_one(r));
    return out;
}

std::vector<double> GbdtModel::predict_with_xgboost(std::span<const std::vector<double>> rows) const {
    std::vector<double> out(rows.size(), 0.0);
    if (rows.empty()) return out;
    if (prior_) out = prior_->predict_with_xgboost(rows);
    std::vector<std::vector<double>> leading;  // rows cut to this model's columns
    for (const auto& r : rows) {
        require(r.size() >= names_.size(), "cost model: a feature row has " + std::to_string(r.size()) +
                                               " values, expected " + std::to_string(names_.size()));
        leading.emplace_back(r.begin(), r.begin() + long(names_.size()));
    }
    Matrix x(leading, names_.size());
    bst_ulong len = 0;
    const float* values = nullptr;
    Handle b;
    call("loading the model", [&] { return XGBoosterLoadModelFromBuffer(b.h, json_.data(), json_.size()); });
    call("prediction", [&] { return XGBoosterPredict(b.h, x.h, 0, 0, 0, &len, &values); });
    require(len == rows.size(), "cost model: XGBoost returned a prediction count that does not match the rows");
    for (std::size_t i = 0; i < rows.size(); ++i) out[i] += values[i];
    return out;
}

std::string GbdtModel::save_json() const { return json_; }

}  // namespace tune::cost_model
