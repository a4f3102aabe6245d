// The config for a shape that was never measured: candidates (the template default and the
// nearest tuned shapes' winners) scored by how they measured on those tuned shapes, the cost
// model's prediction for a shape standing in where a candidate was not measured there. The
// dispatcher and `tune model-report` both pick through pick_unseen, so the report measures
// what the dispatcher serves.
#pragma once

#include <cmath>
#include <cstddef>
#include <functional>
#include <span>

namespace tune::cost_model {

// Per-shape losses are capped here: log(4), i.e. 4x slower than the shape's best or worse.
// The model's training targets use the same cap, so measured and predicted losses compare.
inline const double kTargetCap = std::log(4.0);

// log(seconds / best_seconds) capped at kTargetCap: how far a config is from its shape's best.
double relative_loss(double seconds, double best_seconds);
// A model's prediction (trained on relative_loss targets) as a loss: clamped to [0, kTargetCap].
// Throws tune::Error when it is not finite.
double predicted_loss(double prediction);

struct UnseenPolicy {
    // Candidates: the default and the winners of the nearest tuned shapes, up to this many
    // distinct winners valid for the shape, nearest first.
    std::size_t neighbours = 8;
    // Evidence: the nearest tuned shapes whose measurements score the candidates.
    std::size_t evidence = 8;
    // A neighbour's weight is exp(-distance / bandwidth), distance in octaves (shape_distance):
    // evidence fades slowly, a shape 4 octaves away counting e^-1 as much as one at distance 0,
    // so a config must do well on several near shapes, not only on the nearest one.
    double bandwidth = 4.0;
    // Weight of the model's prediction for the unseen shape itself beside the evidence (a
    // neighbour at distance 0 weighs 1). 0: the model only stands in for measurements the
    // store lacks, and the pick needs no prediction at lookup.
    double model_weight = 0.0;
};

// What is known about the candidates of one unseen shape. Evidence neighbours come nearest
// first; `losses` holds, per candidate, its loss on each neighbour (row-major, candidates x
// neighbours): relative_loss where the store measured it or a config of its equivalence class
// there (the class's fastest member: one kernel, several measurements), else predicted_loss
// of the model's prediction for that config on that neighbour, else NaN.
struct UnseenEvidence {
    std::size_t candidates = 0;
    std::span<const double> distances;
    std::span<const float> losses;
};

// The model's predicted relative loss of candidate i on the unseen shape (NaN: none); asked
// only when policy.model_weight > 0.
using UnseenPrediction = std::function<double(std::size_t)>;

// Each candidate's score is the weighted mean of its known losses on the evidence neighbours,
// with its prediction for the unseen shape at model_weight. Returns the candidate with the
// lowest score (ties: the lower index); a candidate with nothing known is never preferred to
// one with something; when none has anything, candidate 0. Throws tune::Error on inconsistent sizes.
std::size_t pick_unseen(const UnseenEvidence& evidence, const UnseenPrediction& predict,
                        const UnseenPolicy& policy = {});

}  // namespace tune::cost_model
