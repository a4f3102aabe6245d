// Test helpers: a scratch directory that exists for one test and is removed after it, and a
// run of the built `tune` command line (exit code, stdout and stderr together).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <string>

namespace tune::testing {

class TempDir {
public:
    // `tag` names the test in the path, for a reader of /tmp after a crash.
    explicit TempDir(const std::string& tag) {
        static std::atomic<int> counter{0};
        path = std::filesystem::temp_directory_path() /
               ("libtune-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string file(const std::string& name) const { return (path / name).string(); }

    std::filesystem::path path;
};

#ifdef LIBTUNE_CLI_PATH
struct CliResult {
    int code;
    std::string out;
};

inline CliResult run_tune(const std::string& args) {
    const std::string cmd = std::string(LIBTUNE_CLI_PATH) + " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    std::array<char, 4096> buf;
    while (std::size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
    const int status = pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}
#endif

}  // namespace tune::testing
