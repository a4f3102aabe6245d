// shared_device_runtime (tune/shared_runtime.hpp), the helper behind cuda::shared_runtime and
// hip::shared_runtime, on a fake runtime: made once on device 0 and shared, retried after a
// failure, given the default compile threads.
#include <catch2/catch.hpp>

#include "tune/error.hpp"
#include "tune/shared_runtime.hpp"

using namespace tune;

namespace {

struct FakeOptions {
    int compile_threads = 0;
};

struct FakeRuntime {
    static inline int attempts = 0;
    static inline bool fail = true;
    int ordinal = -1, compile_threads = 0;

    static std::shared_ptr<FakeRuntime> for_device(int ordinal, FakeOptions o) {
        ++attempts;
        if (fail) throw Error("no fake device");
        return std::make_shared<FakeRuntime>(FakeRuntime{ordinal, o.compile_threads});
    }
};

}  // namespace

TEST_CASE("the shared GPU runtime is made once on device 0, and tried again after a failure") {
    CHECK_THROWS_WITH((shared_device_runtime<FakeRuntime, FakeOptions>()), Catch::Contains("no fake device"));
    CHECK_THROWS((shared_device_runtime<FakeRuntime, FakeOptions>()));
    CHECK(FakeRuntime::attempts == 2);
    FakeRuntime::fail = false;
    const auto first = shared_device_runtime<FakeRuntime, FakeOptions>();
    const auto again = shared_device_runtime<FakeRuntime, FakeOptions>();
    CHECK(FakeRuntime::attempts == 3);
    CHECK(first == again);
    CHECK(first->ordinal == 0);
    CHECK(first->compile_threads == default_compile_threads());
}
