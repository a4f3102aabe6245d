// The Measurer's device path (GPU backends), driven by a host-memory accelerator: operands
// uploaded once per problem, outputs poisoned on the "device" and downloaded for the fp64
// check, timing taken from the accelerator's timer, L2 flush requested when asked.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>

#include "fake_template.hpp"
#include "fast_measure.hpp"
#include "tune/accelerator.hpp"
#include "tune/error.hpp"
#include "tune/measurer.hpp"

using namespace tune;

namespace {

// "Device" memory is a second set of host buffers; each timed call costs 1 ms of "device" time.
class HostAccelerator final : public Accelerator {
public:
    int uploads = 0, downloads = 0, poisons = 0, flushed_samples = 0, timed_calls = 0;

    OpArgs upload(const Workload& w) override {
        ++uploads;
        return buffers_.upload(
            w, [](AlignedBuffer& b, const void* host, std::size_t bytes) { std::memcpy(b.data(), host, bytes); },
            [](AlignedBuffer& b) { return static_cast<void*>(b.data()); });
    }
    void poison_outputs() override {
        ++poisons;
        for (auto& b : buffers_.outputs()) std::fill_n(b.as<float>(), b.bytes() / 4, std::numeric_limits<float>::quiet_NaN());
    }
    void download(Workload& w) override {
        ++downloads;
        buffers_.download(w, [](void* host, const AlignedBuffer& b, std::size_t bytes) { std::memcpy(host, b.data(), bytes); });
    }
    double time_calls(const std::function<void()>& run, int calls, bool flush_l2) override {
        if (flush_l2) ++flushed_samples;
        for (int i = 0; i < calls; ++i) run();
        timed_calls += calls;
        return 1e-3;
    }

private:
    OperandBuffers<AlignedBuffer> buffers_;
};

// The device reports 1 ms per call: no inner repetitions, a few samples.
MeasureOptions fast_device_options() {
    MeasureOptions o = test::fast_measure_options();
    o.min_sample_s = 0;
    return o;
}

}  // namespace

TEST_CASE("device measurement: operands uploaded once per problem, verified on the host, timed by the device") {
    auto accel = std::make_shared<HostAccelerator>();
    DeviceInfo dev;
    dev.backend = Backend::cuda;
    dev.arch = "sm_90a";
    Measurer measurer(dev, fast_device_options(), accel);
    testing::FakeGemmTemplate t;
    const Problem p = make_gemm(8, 8, 8);
    const Config good = t.space(p)->default_config();

    Measurement m = measurer.measure(p, t, good);
    REQUIRE(m.status == Status::ok);
    CHECK(m.stats.median_s == Approx(1e-3));  // the accelerator's time, not the wall clock
    CHECK(m.stats.stable);
    CHECK(accel->uploads == 1);
    CHECK(accel->downloads == 1);
    CHECK(accel->poisons == 1);
    CHECK(accel->flushed_samples == 0);

    Config wrong = good;
    wrong.set("mode", std::string("wrong"));
    m = measurer.measure(p, t, wrong);
    CHECK(m.status == Status::wrong_result);
    CHECK(accel->uploads == 1);  // same problem: operands stay on the device
    CHECK(accel->poisons == 2);

    measurer.measure(make_gemm(4, 8, 8), t, good);
    CHECK(accel->uploads == 2);
}

TEST_CASE("device measurement: unwritten outputs stay poisoned, cold-cache timing flushes per sample") {
    auto accel = std::make_shared<HostAccelerator>();
    MeasureOptions o = fast_device_options();
    o.flush_cache = true;
    Measurer measurer(DeviceInfo{}, o, accel);
    // A template whose kernel writes nothing.
    struct Silent final : Template {
        TemplateInfo info_{"test.gemm.silent", OpKind::gemm, Backend::cuda, "v1"};
        std::shared_ptr<const Space> space_ = std::make_shared<Space>();
        struct K final : Kernel {
            void run(const OpArgs&) const override {}
        };
        const TemplateInfo& info() const override { return info_; }
        bool supports(const Problem&) const override { return true; }
        std::shared_ptr<const Space> space(const Problem&) const override { return space_; }
        std::unique_ptr<Kernel> instantiate(const Problem&, const Config&) const override { return std::make_unique<K>(); }
    } silent;
    const Problem p = make_gemm(4, 4, 4);
    Measurement m = measurer.measure(p, silent, Config{});
    CHECK(m.status == Status::wrong_result);
    CHECK_THAT(m.reason, Catch::Contains("NaN"));

    testing::FakeGemmTemplate t;
    m = measurer.measure(p, t, t.space(p)->default_config());
    REQUIRE(m.status == Status::ok);
    CHECK(accel->flushed_samples == m.stats.count);
    CHECK(m.stats.inner == 1);
}

TEST_CASE("device measurement refuses isolation and a null accelerator") {
    MeasureOptions o = fast_device_options();
    o.isolate = true;
    CHECK_THROWS_WITH(Measurer(DeviceInfo{}, o, std::make_shared<HostAccelerator>()), Catch::Contains("isolate"));
    CHECK_THROWS_AS(Measurer(DeviceInfo{}, fast_device_options(), nullptr), Error);
}
