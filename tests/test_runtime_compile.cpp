// Run-time compilation plumbing without a GPU toolkit: the on-disk binary cache (hit, miss,
// corruption, atomic writes) and the compile service (once per instance, failures recorded).
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "tune/binary_cache.hpp"
#include "tune/compile_service.hpp"
#include "tune/error.hpp"

namespace fs = std::filesystem;
using namespace tune;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("libtune-cache-test-" + std::to_string(::getpid()) + "-" +
                                            std::to_string(reinterpret_cast<std::uintptr_t>(this)));
        fs::remove_all(path);
    }
    ~TempDir() { fs::remove_all(path); }
};

// Compiles "good" instances into a binary that spells the request; "bad" ones fail.
class FakeCompiler final : public KernelCompiler {
public:
    mutable std::atomic<int> calls{0};
    std::string version() const override { return "fake 1.0"; }
    CompileResult compile(const CompileRequest& r) const override {
        ++calls;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        CompileResult out;
        if (r.instance.rfind("bad", 0) == 0) {
            out.log = "error: '" + r.instance + "' does not name a kernel";
            return out;
        }
        out.ok = true;
        out.binary = "BIN:" + r.arch + ":" + r.instance;
        out.entry = "_Z" + r.instance;
        return out;
    }
};

CompileRequest request(std::string instance, std::string arch = "sm_80") {
    CompileRequest r;
    r.source_name = "k.cu";
    r.source = "template <int N> __global__ void k() {}";
    r.headers = {{"h.cuh", "#pragma once"}};
    r.instance = std::move(instance);
    r.arch = std::move(arch);
    return r;
}

std::string read_all(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& p, const std::string& s) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << s;
}

}  // namespace

TEST_CASE("binary cache keys change with source, instance, arch and compiler version") {
    FakeCompiler fc;
    const BinaryKey base = binary_key(request("k<1>"), fc);
    CHECK(binary_key(request("k<1>"), fc).digest() == base.digest());
    CHECK(binary_key(request("k<2>"), fc).digest() != base.digest());
    CHECK(binary_key(request("k<1>", "sm_90a"), fc).digest() != base.digest());
    CompileRequest edited = request("k<1>");
    edited.headers[0].second += "\n// edited";
    CHECK(binary_key(edited, fc).digest() != base.digest());
    CompileRequest flagged = request("k<1>");
    flagged.options.push_back("-DX=1");
    CHECK(binary_key(flagged, fc).digest() != base.digest());
    BinaryKey other_compiler = base;
    other_compiler.compiler = "fake 2.0";
    CHECK(other_compiler.digest() != base.digest());
}

TEST_CASE("binary cache: miss, store, hit, nothing temporary left behind") {
    TempDir dir;
    BinaryCache cache(dir.path / "nested" / "kernels");
    FakeCompiler fc;
    const BinaryKey key = binary_key(request("k<1>"), fc);
    CHECK_FALSE(cache.load(key).has_value());
    CompileResult r = fc.compile(request("k<1>"));
    cache.store(key, r);
    auto hit = cache.load(key);
    REQUIRE(hit.has_value());
    CHECK(hit->ok);
    CHECK(hit->from_cache);
    CHECK(hit->binary == r.binary);
    CHECK(hit->entry == r.entry);
    int files = 0;
    for (const auto& e : fs::directory_iterator(cache.dir())) {
        ++files;
        CHECK(e.path().extension() == ".bin");
    }
    CHECK(files == 1);
    CompileResult failed;
    CHECK_THROWS_AS(cache.store(key, failed), Error);
}

TEST_CASE("binary cache: a corrupt, truncated or foreign file is a miss and is removed") {
    TempDir dir;
    BinaryCache cache(dir.path);
    FakeCompiler fc;
    const BinaryKey key = binary_key(request("k<1>"), fc);
    cache.store(key, fc.compile(request("k<1>")));
    const fs::path file = cache.path_of(key);
    const std::string good = read_all(file);

    SECTION("one flipped byte in the binary") {
        std::string bad = good;
        bad[bad.size() - 12] ^= 0x40;
        write_all(file, bad);
    }
    SECTION("truncated") { write_all(file, good.substr(0, good.size() / 2)); }
    SECTION("empty") { write_all(file, ""); }
    SECTION("garbage") { write_all(file, std::string(100, 'x')); }
    SECTION("a huge length field") {
        std::string bad = good;
        for (int i = 0; i < 8; ++i) bad[8 + i] = char(0xff);
        write_all(file, bad);
    }
    SECTION("another key's valid file under this name") {
        const BinaryKey other = binary_key(request("k<2>"), fc);
        cache.store(other, fc.compile(request("k<2>")));
        fs::copy_file(cache.path_of(other), file, fs::copy_options::overwrite_existing);
    }
    CHECK_FALSE(cache.load(key).has_value());
    CHECK_FALSE(fs::exists(file));
    // And the next store repairs it.
    cache.store(key, fc.compile(request("k<1>")));
    CHECK(cache.load(key).has_value());
}

TEST_CASE("compile service compiles each instance once, in parallel, and records failures with the log") {
    TempDir dir;
    auto fc = std::make_shared<FakeCompiler>();
    {
        CompileService service(fc, dir.path, 2);
        std::vector<std::shared_future<CompileResult>> futures;
        for (int round = 0; round < 3; ++round)
            for (int i = 0; i < 6; ++i) futures.push_back(service.submit(request("k<" + std::to_string(i) + ">")));
        futures.push_back(service.submit(request("bad<1>")));
        for (std::size_t i = 0; i + 1 < futures.size(); ++i) CHECK(futures[i].get().ok);
        const CompileResult bad = futures.back().get();
        CHECK_FALSE(bad.ok);
        CHECK_THAT(bad.log, Catch::Contains("does not name a kernel"));
        CHECK(fc->calls == 7);
        const auto stats = service.stats();
        CHECK(stats.compiled == 7);
        CHECK(stats.failures == 1);
        CHECK(stats.cache_hits == 0);
        // A failure is remembered in this process, not recompiled.
        CHECK_FALSE(service.get(request("bad<1>")).ok);
        CHECK(fc->calls == 7);
    }
    // A new process (service) reads the successes from disk; the failure is retried.
    CompileService again(fc, dir.path, 1);
    const CompileResult hit = again.get(request("k<3>"));
    CHECK(hit.ok);
    CHECK(hit.from_cache);
    CHECK(hit.binary == "BIN:sm_80:k<3>");
    CHECK_FALSE(again.get(request("bad<1>")).ok);
    CHECK(fc->calls == 8);
    CHECK(again.stats().cache_hits == 1);
}

TEST_CASE("compile service without a disk cache and with bad arguments") {
    auto fc = std::make_shared<FakeCompiler>();
    CHECK_THROWS_AS(CompileService(fc, std::nullopt, 0), Error);
    CHECK_THROWS_AS(CompileService(nullptr, std::nullopt, 1), Error);
    CompileService service(fc, std::nullopt, 1);
    CHECK(service.cache() == nullptr);
    CHECK(service.get(request("k<1>")).ok);
    CHECK_FALSE(service.get(request("k<1>")).from_cache);
}

TEST_CASE("LIBTUNE_COMPILE_THREADS sets the compile threads and a bad value names the variable") {
    REQUIRE(std::getenv("LIBTUNE_COMPILE_THREADS") == nullptr);
    struct Restore {
        ~Restore() { ::unsetenv("LIBTUNE_COMPILE_THREADS"); }
    } restore;
    const int fallback = std::max(1, int(std::thread::hardware_concurrency()) - 1);
    CHECK(default_compile_threads() == fallback);
    ::setenv("LIBTUNE_COMPILE_THREADS", "3", 1);
    CHECK(default_compile_threads() == 3);
    ::setenv("LIBTUNE_COMPILE_THREADS", "256", 1);
    CHECK(default_compile_threads() == 256);
    // The same spellings LIBTUNE_NUM_THREADS rejects: blanks, signs, fractions, out of range.
    for (const std::string bad : {"0", "-1", "+2", " 2", "2 ", "two", "1.5", "257", "99999999999"}) {
        ::setenv("LIBTUNE_COMPILE_THREADS", bad.c_str(), 1);
        CHECK_THROWS_WITH(default_compile_threads(),
                          Catch::Contains("LIBTUNE_COMPILE_THREADS='" + bad + "'") && Catch::Contains("from 1 to 256"));
    }
    ::setenv("LIBTUNE_COMPILE_THREADS", "", 1);  // empty: not set
    CHECK(default_compile_threads() == fallback);
}
