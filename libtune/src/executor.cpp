#include "tune/executor.hpp"

#include "tune/error.hpp"
#include "tune/measurer.hpp"

namespace tune {

LocalExecutor::LocalExecutor(DeviceInfo device, MeasureCandidateFn measure)
    : device_(std::move(device)), measure_(std::move(measure)) {
    require(static_cast<bool>(measure_), "LocalExecutor: no measure function");
}

LocalExecutor::LocalExecutor(Measurer& measurer)
    : LocalExecutor(measurer.device(), [&measurer](const Problem& p, const Template& t, const Config& c) {
          return measurer.measure(p, t, c);
      }) {}

void LocalExecutor::submit(Job job) {
    require(job.tmpl != nullptr, "LocalExecutor: job without a template");
    queue_.push_back(std::move(job));
}

JobResult LocalExecutor::wait_next() {
    require(!queue_.empty(), "LocalExecutor: wait_next with no job submitted");
    Job job = std::move(queue_.front());
    queue_.pop_front();
    return {job.id, measure_(job.problem, *job.tmpl, job.config)};
}

}  // namespace tune
