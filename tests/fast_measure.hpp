// Measurement options for tests that tune: a short warm-up and a few repetitions, no pinning,
// so a tuning loop over tiny problems runs in milliseconds.
#pragma once

#include "tune/measurer.hpp"

namespace tune::test {

inline MeasureOptions fast_measure_options() {
    MeasureOptions o;
    o.warmup_s = 0.001;
    o.max_time_s = 0.02;
    o.min_reps = 3;
    o.max_reps = 10;
    o.pin_cpu = -1;
    return o;
}

}  // namespace tune::test
