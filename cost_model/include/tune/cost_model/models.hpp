// The learned cost models. GbdtModel: gradient-boosted trees (XGBoost C API) that rank configs
// by predicted log(seconds per FLOP); trained on many shapes it transfers to new ones.
// GaussianProcess: a small GP (Eigen) with predictive uncertainty, for Bayesian optimisation.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace tune::cost_model {

// Rows of named feature columns and their targets (see target_of).
struct Dataset {
    std::vector<std::string> names;
    std::vector<std::vector<double>> rows;
    std::vector<double> targets;
};

struct GbdtParams {
    int rounds = 80;
    int max_depth = 6;
    double eta = 0.2;
    double min_child_weight = 1;
    double lambda = 1;
};

class GbdtModel {
public:
    // Fits the trees to `data`. With a prior, the trees learn the residual target - prior(x)
    // and predictions add the prior's: a model of other shapes warm-starts this one. The
    // prior's columns must lead the data's; columns after them (knobs the prior never saw)
    // are the new trees' alone.
    static std::shared_ptr<const GbdtModel> train(const Dataset& data, const GbdtParams& params = {},
                                                  std::shared_ptr<const GbdtModel> prior = nullptr);
    // A model saved by save_json(); throws tune::Error when XGBoost rejects the text.
    static std::shared_ptr<const GbdtModel> load_json(const std::string& json, std::vector<std::string> names);
    ~GbdtModel();

    const std::vector<std::string>& names() const { return names_; }
    // Rows in names() order (see column_map); NaN = missing. A row may go on past names()
    // (a model trained on top of this one as its prior has more columns): those are ignored.
    std::vector<double> predict(std::span<const std::vector<double>> rows) const;
    // One row, without allocating: the dispatcher's unseen-shape lookups.
    double predict_one(std::span<const double> row) const;
    // The same through XGBoost's own predictor (slow): the reference the in-process trees are
    // checked against.
    std::vector<double> predict_with_xgboost(std::span<const std::vector<double>> rows) const;
    // The trees as XGBoost JSON (the prior is not included: save models trained without one).
    std::string save_json() const;
    bool has_prior() const { return prior_ != nullptr; }

private:
    struct Handle;
    // The trees, flattened for prediction in process: XGBoost's own prediction sets up a
    // matrix per call (hundreds of microseconds), far too slow for a runtime lookup.
    struct Node {
        std::int32_t left = -1, right = -1;  // -1: a leaf, whose value is `value`
        std::uint32_t feature = 0;
        float value = 0;                     // split threshold (go left when x < value), or leaf value
        bool missing_left = false;
    };
    GbdtModel() = default;
    void flatten();  // reads the trees from json_
    // Throws unless the tree at nodes_[offset, offset + n) is a tree from its root (no cycle,
    // no shared child) with leaves of at most kMaxValue in size.
    void require_tree(std::int32_t offset, std::size_t n) const;
    static constexpr float kMaxValue = 1e6f;  // bound on the base score and on leaf values
    std::string json_;  // the trees as XGBoost JSON
    std::vector<Node> nodes_;
    std::vector<std::uint32_t> roots_;
    float base_score_ = 0;
    std::vector<std::string> names_;
    std::shared_ptr<const GbdtModel> prior_;
};

// Exact GP regression with a squared-exponential kernel on standardised inputs; the length
// scale is chosen by marginal likelihood from a small grid. Columns constant over the
// training rows carry no information here and are dropped.
class GaussianProcess {
public:
    void fit(std::span<const std::vector<double>> rows, std::span<const double> targets);
    struct Prediction {
        double mean, stddev;
    };
    std::vector<Prediction> predict(std::span<const std::vector<double>> rows) const;
    bool fitted() const { return !alpha_.empty(); }

private:
    std::vector<std::size_t> columns_;
    std::vector<double> center_, scale_;
    std::vector<std::vector<double>> train_;  // standardised training inputs
    std::vector<double> alpha_;               // K^-1 (y - mean)
    std::vector<double> chol_;                // lower Cholesky factor of K, row-major n x n
    double y_mean_ = 0, y_scale_ = 1, length_ = 1, noise_ = 1e-2;
    std::vector<double> standardise(const std::vector<double>& row) const;
};

// Expected improvement (for minimisation) over the best target so far.
double expected_improvement(double mean, double stddev, double best);

}  // namespace tune::cost_model
