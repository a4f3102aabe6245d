// Files the `tune` command reads and writes besides a store's own: the store path checks and
// the one way outputs (exports, reports) are written.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli.hpp"
#include "tune/error.hpp"

namespace tune::cli {

namespace fs = std::filesystem;

void require_existing(const std::string& path) {
    require(fs::exists(path), "database '" + path + "' does not exist");
    // SQLite would make an empty file a new store: not what a verb on an existing one means.
    std::error_code ec;
    require(fs::is_directory(path, ec) || fs::file_size(path, ec) > 0 || ec,
            "database '" + path + "' is an empty file, not a libtune database");
}

std::ifstream open_input(const std::string& path, const std::string& what) {
    // An ifstream opens a directory without complaint and then reads nothing.
    std::error_code ec;
    require(!fs::is_directory(path, ec), what + ": '" + path + "' is a directory");
    std::ifstream in(path);
    require(in.good(), what + ": cannot open '" + path + "'");
    return in;
}

void require_store_path(const std::string& path, const std::string& option) {
    // SQLite reads "" as a temporary database and ":memory:" as one in memory: either would
    // drop every result when the command ends, while it reports success.
    require(!path.empty(), option + ": the database path is empty");
    require(path != ":memory:", option + ": ':memory:' would keep nothing; give a file path");
}

void write_output(const std::string& path, const std::string& option, const std::vector<std::string>& stores,
                  const std::function<void(std::ostream&)>& write) {
    require(!path.empty(), option + ": the output path is empty");
    const fs::path target(path);
    std::error_code ec;
    require(!fs::is_directory(target, ec), option + ": '" + path + "' is a directory");
    for (const std::string& store : stores)
        require(!fs::exists(target, ec) || !fs::equivalent(store, target, ec),
                option + ": '" + path + "' is the database '" + store + "' this command reads; writing it would destroy it");
    // Written next to the target and renamed over it: the target is never half-written, and a
    // failed write leaves neither it nor a partial file behind.
    const fs::path partial = path + ".partial";
    struct Cleanup {
        const fs::path& file;
        bool armed = true;
        ~Cleanup() {
            std::error_code ignored;
            if (armed) fs::remove(file, ignored);
        }
    } cleanup{partial};
    {
        std::ofstream out(partial, std::ios::binary | std::ios::trunc);
        require(out.good(), option + ": cannot write '" + partial.string() + "'");
        write(out);
        out.flush();
        require(out.good(), option + ": write to '" + partial.string() + "' failed (disk full?)");
    }
    fs::rename(partial, target, ec);
    require(!ec, option + ": cannot create '" + path + "': " + ec.message());
    cleanup.armed = false;
}

}  // namespace tune::cli
