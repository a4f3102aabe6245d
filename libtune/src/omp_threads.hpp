// OpenMP's thread count for the calling thread, set for one call and restored afterwards.
// OpenMP keeps the setting per thread, so callers with different counts do not race on it.
#pragma once

#include <omp.h>

#include <utility>

namespace tune::detail {

template <class F>
decltype(auto) with_omp_threads(int threads, F&& f) {
    struct Restore {
        int previous;
        ~Restore() { omp_set_num_threads(previous); }
    } restore{omp_get_max_threads()};
    omp_set_num_threads(threads);
    return std::forward<F>(f)();
}

}  // namespace tune::detail
