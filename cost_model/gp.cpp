// GaussianProcess in Eigen: standardise, pick the length scale by marginal likelihood,
// factor once (Cholesky), predict mean and variance.
#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <cmath>
#include <limits>
#include <numbers>

#include "tune/cost_model/models.hpp"
#include "tune/error.hpp"

namespace tune::cost_model {
namespace {

double sq_dist(const std::vector<double>& a, const std::vector<double>& b) {
    double d = 0;
    for (std::size_t i = 0; i < a.size(); ++i) d += (a[i] - b[i]) * (a[i] - b[i]);
    return d;
}

}  // namespace

std::vector<double> GaussianProcess::standardise(const std::vector<double>& row) const {
    std::vector<double> out(columns_.size());
    for (std::size_t j = 0; j < columns_.size(); ++j) {
        double v = row[columns_[j]];
        out[j] = std::isfinite(v) ? (v - center_[j]) / scale_[j] : 0.0;
    }
    return out;
}

void GaussianProcess::fit(std::span<const std::vector<double>> rows, std::span<const double> targets) {
    require(!rows.empty() && rows.size() == targets.size(), "gaussian process: needs rows with one target each");
    const std::size_t n = rows.size(), d = rows.front().size();
    columns_.clear();
    center_.clear();
    scale_.clear();
    for (std::size_t j = 0; j < d; ++j) {
        double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0, sum2 = 0;
        for (const auto& r : rows) {
            double v = std::isfinite(r[j]) ? r[j] : 0.0;
            lo = std::min(lo, v);
            hi = std::max(hi, v);
            sum += v;
            sum2 += v * v;
        }
        if (hi - lo < 1e-12) continue;
        double mean = sum / double(n), var = std::max(sum2 / double(n) - mean * mean, 1e-12);
        columns_.push_back(j);
        center_.push_back(mean);
        scale_.push_back(std::sqrt(var));
    }
    train_.clear();
    for (const auto& r : rows) train_.push_back(standardise(r));
    double sum = 0, sum2 = 0;
    for (double y : targets) {
        require(std::isfinite(y), "gaussian process: a target is not finite");
        sum += y;
        sum2 += y * y;
    }
    y_mean_ = sum / double(n);
    y_scale_ = std::sqrt(std::max(sum2 / double(n) - y_mean_ * y_mean_, 1e-6));
    Eigen::VectorXd y(n);
    for (std::size_t i = 0; i < n; ++i) y[long(i)] = (targets[i] - y_mean_) / y_scale_;

    Eigen::MatrixXd dist(n, n);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j <= i; ++j) dist(long(i), long(j)) = dist(long(j), long(i)) = sq_dist(train_[i], train_[j]);
    // Length scales relative to sqrt(dims), the typical distance of standardised points.
    const double base = std::sqrt(double(std::max<std::size_t>(columns_.size(), 1)));
    double best_lml = -std::numeric_limits<double>::infinity();
    for (double rel : {0.25, 0.5, 1.0, 2.0}) {
        const double length = rel * base;
        Eigen::MatrixXd k = (-dist.array() / (2 * length * length)).exp().matrix();
        k.diagonal().array() += noise_;
        Eigen::LLT<Eigen::MatrixXd> llt(k);
        if (llt.info() != Eigen::Success) continue;
        Eigen::VectorXd alpha = llt.solve(y);
        double log_det = 2 * llt.matrixL().toDenseMatrix().diagonal().array().log().sum();
        double lml = -0.5 * y.dot(alpha) - 0.5 * log_det;
        if (lml > best_lml) {
            best_lml = lml;
            length_ = length;
            alpha_.assign(alpha.data(), alpha.data() + n);
            Eigen::MatrixXd l = llt.matrixL();
            chol_.resize(n * n);
            for (std::size_t i = 0; i < n; ++i)
                for (std::size_t j = 0; j < n; ++j) chol_[i * n + j] = l(long(i), long(j));
        }
    }
    require(!alpha_.empty(), "gaussian process: the kernel matrix is not positive definite");
}

std::vector<GaussianProcess::Prediction> GaussianProcess::predict(std::span<const std::vector<double>> rows) const {
    require(fitted(), "gaussian process: predict before fit");
    const std::size_t n = train_.size();
    Eigen::Map<const Eigen::VectorXd> alpha(alpha_.data(), long(n));
    Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> l(chol_.data(), long(n), long(n));
    std::vector<Prediction> out;
    out.reserve(rows.size());
    Eigen::VectorXd k(n);
    for (const auto& r : rows) {
        auto x = standardise(r);
        for (std::size_t i = 0; i < n; ++i) k[long(i)] = std::exp(-sq_dist(x, train_[i]) / (2 * length_ * length_));
        double mean = k.dot(alpha);
        Eigen::VectorXd v = l.triangularView<Eigen::Lower>().solve(k);
        double var = std::max(1.0 + noise_ - v.squaredNorm(), 1e-12);
        out.push_back({y_mean_ + mean * y_scale_, std::sqrt(var) * y_scale_});
    }
    return out;
}

double expected_improvement(double mean, double stddev, double best) {
    if (stddev <= 0) return std::max(best - mean, 0.0);
    const double z = (best - mean) / stddev;
    const double cdf = 0.5 * std::erfc(-z / std::numbers::sqrt2);
    const double pdf = std::exp(-0.5 * z * z) / std::sqrt(2 * std::numbers::pi);
    return (best - mean) * cdf + stddev * pdf;
}

}  // namespace tune::cost_model
