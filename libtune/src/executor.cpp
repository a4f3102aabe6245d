#include "tune/executor.hpp"

#include "tune/error.hpp"
#include "tune/measurer.hpp"
#include "tune/runtime_compile.hpp"

namespace tune {

LocalExecutor::LocalExecutor(DeviceInfo device, MeasureCandidateFn measure, std::size_t lookahead)
    : device_(std::move(device)), measure_(std::move(measure)), lookahead_(lookahead) {
    require(static_cast<bool>(measure_), "LocalExecutor: no measure function");
    require(lookahead_ >= 1, "LocalExecutor: lookahead must be >= 1");
}

LocalExecutor::LocalExecutor(Measurer& measurer, std::size_t lookahead)
    : LocalExecutor(
          measurer.device(),
          [&measurer](const Problem& p, const Template& t, const Config& c) { return measurer.measure(p, t, c); },
          lookahead) {}

void LocalExecutor::submit(Job job) {
    require(job.tmpl != nullptr, "LocalExecutor: job without a template");
    if (const auto* rc = dynamic_cast<const RuntimeCompiled*>(job.tmpl)) {
        try {
            rc->precompile(job.problem, job.config);
        } catch (const std::exception&) {
            // An invalid config: measuring it records why.
        }
    }
    queue_.push_back(std::move(job));
}

JobResult LocalExecutor::wait_next() {
    require(!queue_.empty(), "LocalExecutor: wait_next with no job submitted");
    Job job = std::move(queue_.front());
    queue_.pop_front();
    if (job.expired && job.expired()) return {job.id, {}, true};
    return {job.id, measure_(job.problem, *job.tmpl, job.config), false};
}

}  // namespace tune
