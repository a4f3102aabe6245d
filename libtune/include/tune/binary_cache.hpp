// BinaryCache: compiled GPU kernels on disk, keyed by (source hash, instance, arch, compiler
// version), so a tuned or dispatched kernel is never compiled twice on one machine.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "tune/runtime_compile.hpp"

namespace tune {

struct BinaryKey {
    std::string source_hash, instance, arch, compiler;
    std::string text() const;    // canonical, stored inside the file and compared on read
    std::string digest() const;  // hex of a hash of text(): the file name
};

BinaryKey binary_key(const CompileRequest& request, const KernelCompiler& compiler);

class BinaryCache {
public:
    // Creates the folder when missing (throws tune::Error naming it when that fails).
    explicit BinaryCache(std::filesystem::path dir);

    // $LIBTUNE_KERNEL_CACHE, else $XDG_CACHE_HOME/libtune/kernels, else ~/.cache/libtune/kernels.
    static std::filesystem::path default_dir();

    const std::filesystem::path& dir() const { return dir_; }
    std::filesystem::path path_of(const BinaryKey& key) const;

    // The stored binary and entry name, or nullopt when absent or invalid: a file that is
    // truncated, has a bad checksum or belongs to another key is treated as a miss (and
    // removed), never trusted.
    std::optional<CompileResult> load(const BinaryKey& key) const;
    // Atomic: written to a temporary file in the folder, then renamed over the final name, so
    // a reader sees the old file, the new one or none. Only successful results are stored.
    void store(const BinaryKey& key, const CompileResult& result) const;

private:
    std::filesystem::path dir_;
};

}  // namespace tune
