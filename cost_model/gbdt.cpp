// GbdtModel over XGBoost's C API: single-threaded and seeded, so training is deterministic.
#include <xgboost/c_api.h>

#include <cmath>
#include <numeric>

#include "tune/cost_model/models.hpp"
#include "tune/error.hpp"

namespace tune::cost_model {
namespace {

void check(int rc, const char* what) {
    if (rc != 0) throw Error(std::string("cost model: XGBoost ") + what + " failed: " + XGBGetLastError());
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
        check(XGDMatrixCreateFromMat(flat.data(), rows.size(), cols, std::nanf(""), &h), "DMatrix");
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
        check(XGBSetGlobalConfig(R"({"verbosity":0})"), "configuration");
        check(XGBoosterCreate(cache, cache ? 1 : 0, &h), "create");
    }
    ~Handle() { XGBoosterFree(h); }
    void set(const char* key, const std::string& value) { check(XGBoosterSetParam(h, key, value.c_str()), key); }
};

GbdtModel::~GbdtModel() = default;

std::shared_ptr<const GbdtModel> GbdtModel::train(const Dataset& data, const GbdtParams& params,
                                                  std::shared_ptr<const GbdtModel> prior) {
    require(!data.rows.empty() && data.rows.size() == data.targets.size(),
            "cost model: training needs rows with one target each");
    require(!prior || prior->names() == data.names, "cost model: the prior's feature columns differ from the data's");
    std::vector<float> labels(data.targets.begin(), data.targets.end());
    if (prior) {
        auto base = prior->predict(data.rows);
        for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<float>(data.targets[i] - base[i]);
    }
    for (float y : labels) require(std::isfinite(y), "cost model: a training target is not finite");
    const double mean = std::accumulate(labels.begin(), labels.end(), 0.0) / double(labels.size());

    Matrix x(data.rows, data.names.size());
    check(XGDMatrixSetFloatInfo(x.h, "label", labels.data(), labels.size()), "labels");
    std::shared_ptr<GbdtModel> model(new GbdtModel());
    model->names_ = data.names;
    model->prior_ = std::move(prior);
    model->booster_ = std::make_unique<Handle>(&x.h);
    auto& b = *model->booster_;
    b.set("nthread", "1");
    b.set("seed", "0");
    b.set("tree_method", "exact");
    b.set("objective", "reg:squarederror");
    b.set("base_score", std::to_string(mean));
    b.set("max_depth", std::to_string(params.max_depth));
    b.set("eta", std::to_string(params.eta));
    b.set("min_child_weight", std::to_string(params.min_child_weight));
    b.set("lambda", std::to_string(params.lambda));
    for (int i = 0; i < params.rounds; ++i) check(XGBoosterUpdateOneIter(b.h, i, x.h), "training");
    return model;
}

std::shared_ptr<const GbdtModel> GbdtModel::load_json(const std::string& json, std::vector<std::string> names) {
    require(!names.empty(), "cost model: a stored model names no feature columns");
    std::shared_ptr<GbdtModel> model(new GbdtModel());
    model->names_ = std::move(names);
    model->booster_ = std::make_unique<Handle>();
    check(XGBoosterLoadModelFromBuffer(model->booster_->h, json.data(), json.size()), "loading a stored model");
    bst_ulong features = 0;
    check(XGBoosterGetNumFeature(model->booster_->h, &features), "reading the feature count");
    require(features == model->names_.size(), "cost model: the stored trees read " + std::to_string(features) +
                                                  " features but the model names " +
                                                  std::to_string(model->names_.size()));
    return model;
}

std::vector<double> GbdtModel::predict(std::span<const std::vector<double>> rows) const {
    std::vector<double> out(rows.size(), 0.0);
    if (rows.empty()) return out;
    if (prior_) out = prior_->predict(rows);
    Matrix x(rows, names_.size());
    bst_ulong len = 0;
    const float* values = nullptr;
    check(XGBoosterPredict(booster_->h, x.h, 0, 0, 0, &len, &values), "prediction");
    require(len == rows.size(), "cost model: XGBoost returned a prediction count that does not match the rows");
    for (std::size_t i = 0; i < rows.size(); ++i) out[i] += values[i];
    return out;
}

std::string GbdtModel::save_json() const {
    bst_ulong len = 0;
    const char* buf = nullptr;
    check(XGBoosterSaveModelToBuffer(booster_->h, R"({"format":"json"})", &len, &buf), "saving");
    return std::string(buf, len);
}

}  // namespace tune::cost_model
