// tune ... --mpi: the MPI session and the role of this rank.
#include <cstdio>

#include "cli.hpp"
#include "tune/error.hpp"
#if LIBTUNE_WITH_MPI
#include "tune/mpi/mpi_tuning.hpp"
#endif

namespace tune::cli {

#if LIBTUNE_WITH_MPI
namespace {

class Run final : public MpiRun {
public:
    Run(const DeviceInfo& device, const TemplateRegistry& registry, Measurer& measurer, double rank_timeout_s,
        bool share_host) {
        mpi::MpiOptions options;
        options.share_host = share_host;
        share_host_ = share_host;
        options.rank_timeout_s = rank_timeout_s;
        options.heartbeat_s = std::min(0.5, rank_timeout_s / 6);
        options.on_event = [](const std::string& what) { std::fprintf(stderr, "mpi: %s\n", what.c_str()); };
        auto measure = [&measurer](const Problem& p, const Template& t, const Config& c) { return measurer.measure(p, t, c); };
        if (session_.rank() != 0) {
            mpi::serve(session_, device, registry, measure, options);
            return;
        }
        coordinator_ = std::make_unique<mpi::Coordinator>(session_, device, registry, measure, options);
    }
    Executor* coordinator() override { return coordinator_.get(); }
    std::string summary() const override {
        int measuring = coordinator_ ? coordinator_->measuring_ranks() : 0;
        std::string text = std::to_string(session_.size()) + " ranks: rank 0 coordinates and stores, " +
                           std::to_string(measuring) + " measure";
        if (measuring == 0) return text + " (rank 0 measures itself)";
        return text + ", " + std::to_string(coordinator_->slots()) + " at a time" +
               (share_host_ ? " (--mpi-share-host)" : " (ranks on one host take turns)");
    }
    std::vector<std::string> lost() const override { return coordinator_ ? coordinator_->lost() : std::vector<std::string>{}; }

private:
    mpi::Session session_;  // first in, last out: finalizes after the coordinator stopped the ranks
    std::unique_ptr<mpi::Coordinator> coordinator_;
    bool share_host_ = false;
};

}  // namespace

std::unique_ptr<MpiRun> start_mpi(const DeviceInfo& device, const TemplateRegistry& registry, Measurer& measurer,
                                  double rank_timeout_s, bool share_host) {
    return std::make_unique<Run>(device, registry, measurer, rank_timeout_s, share_host);
}
#else
std::unique_ptr<MpiRun> start_mpi(const DeviceInfo&, const TemplateRegistry&, Measurer&, double, bool) {
    throw Error("--mpi: this tune was built without MPI (install libopenmpi-dev, reconfigure with -DLIBTUNE_WITH_MPI=ON)");
}
#endif

}  // namespace tune::cli
