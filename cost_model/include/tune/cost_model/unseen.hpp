// The config for a shape that was never measured: candidates (the template default and the
// nearest tuned shapes' winners) scored by how they measured on those tuned shapes, with the
// cost model filling in what was not measured. The dispatcher and `tune model-report` both pick
// through pick_unseen, so the report measures what the dispatcher serves.
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
    // Weight of the model's prediction beside the measurements (a measured neighbour at
    // distance 0 weighs 1). 0: the model only stands in for measurements the store lacks.
    double model_weight = 0.0;
};

// What the store knows about the candidates of one unseen shape. Evidence neighbours come
// nearest first; `measured` holds, per candidate, one relative_loss per neighbour (row-major,
// candidates x neighbours), NaN where the store has no measurement of that config there.
struct UnseenEvidence {
    std::size_t candidates = 0;
    std::span<const double> distances;
    std::span<const float> measured;
};

// The model's predicted relative loss of candidate i on the unseen shape; called only for the
// candidates that need it (NaN: no prediction).
using UnseenPrediction = std::function<double(std::size_t)>;

// Each candidate's score is the weighted mean of its losses on the evidence neighbours, a
// missing measurement replaced by the model's prediction (left out when there is none), plus
// the prediction itself at model_weight. Returns the candidate with the lowest score (ties:
// the lower index); a candidate with neither measurements nor a prediction is never preferred
// to one with either; when none has either, candidate 0. Throws tune::Error on inconsistent sizes.
std::size_t pick_unseen(const UnseenEvidence& evidence, const UnseenPrediction& predict,
                        const UnseenPolicy& policy = {});

}  // namespace tune::cost_model
