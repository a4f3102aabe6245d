#include "tune/cost_model/unseen.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <string>

#include "tune/error.hpp"

namespace tune::cost_model {

double relative_loss(double seconds, double best_seconds) {
    require(seconds > 0 && std::isfinite(seconds) && best_seconds > 0 && std::isfinite(best_seconds),
            "cost model: times must be positive and finite");
    return std::min(std::log(seconds / best_seconds), kTargetCap);
}

double predicted_loss(double prediction) {
    require(std::isfinite(prediction), "cost model: a prediction is not finite");
    return std::clamp(prediction, 0.0, kTargetCap);
}

std::size_t pick_unseen(const UnseenEvidence& e, const UnseenPrediction& predict, const UnseenPolicy& policy) {
    const std::size_t n = e.distances.size();
    // On the dispatcher's lookup path: messages are built only on failure.
    if (e.losses.size() != e.candidates * n)
        throw Error("pick_unseen: " + std::to_string(e.losses.size()) + " losses for " +
                    std::to_string(e.candidates) + " candidates x " + std::to_string(n) + " neighbours");
    if (!(policy.bandwidth > 0 && policy.model_weight >= 0))
        throw Error("pick_unseen: the bandwidth must be positive and the model weight non-negative");
    // The weights are the same for every candidate: computed once (on the stack for the usual
    // few neighbours, so a lookup does not allocate).
    std::array<double, 32> small;
    std::vector<double> large;
    double* weight = small.data();
    if (n > small.size()) {
        large.resize(n);
        weight = large.data();
    }
    for (std::size_t j = 0; j < n; ++j) {
        if (!(e.distances[j] >= 0)) throw Error("pick_unseen: a negative shape distance");
        weight[j] = std::exp(-e.distances[j] / policy.bandwidth);
    }
    std::size_t best = 0;
    double best_score = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < e.candidates; ++i) {
        const float* row = e.losses.data() + i * n;
        double sum = 0, total = 0;
        for (std::size_t j = 0; j < n; ++j) {
            if (std::isnan(row[j])) continue;
            sum += weight[j] * double(row[j]);
            total += weight[j];
        }
        const double predicted =
            policy.model_weight > 0 && predict ? predict(i) : std::numeric_limits<double>::quiet_NaN();
        if (!std::isnan(predicted) && policy.model_weight > 0) {
            sum += policy.model_weight * predicted;
            total += policy.model_weight;
        }
        if (total <= 0) continue;  // nothing known: never preferred
        const double score = sum / total;
        if (score < best_score) best = i, best_score = score;
    }
    return best;
}

}  // namespace tune::cost_model
