// Dispatcher: the runtime side. Loads the store once into an in-memory index and answers
// "which config for this shape" (exact hit, nearest tuned shape, template default) in
// nanoseconds, or runs the kernel directly. Thread-safe.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tune/db/database.hpp"
#include "tune/kernel.hpp"

namespace tune {

enum class LookupSource : std::uint8_t { exact, nearest, default_config };
std::string_view to_string(LookupSource s);

struct Selection {
    const Template* tmpl = nullptr;
    const Config* config = nullptr;       // owned by the dispatcher; valid for its lifetime
    LookupSource source = LookupSource::default_config;
    const Problem* tuned_shape = nullptr; // the tuned shape that answered (exact / nearest)
    double tuned_median_s = 0;            // its measured time on that shape
};

struct DispatcherStats {
    std::size_t entries = 0;   // tuned shapes served
    std::size_t stale = 0;     // rows for another template version or an unknown template
    std::size_t rejected = 0;  // rows whose config failed validation (never executed)
    std::vector<std::string> rejections;  // one line per rejected row
};

class Dispatcher {
public:
    // Reads the best ok measurements of `device` from db. Every config is validated against
    // its template's current space first; stale and invalid rows are not served.
    Dispatcher(const Database& db, std::shared_ptr<const TemplateRegistry> registry, const DeviceInfo& device);
    // Opens a SQLite file read-only with the built-in templates of this CPU.
    static std::unique_ptr<Dispatcher> open(const std::filesystem::path& db_path);

    Selection lookup(const Problem& p) const;
    // lookup + instantiate (cached) + run.
    void run(const Problem& p, const OpArgs& args) const;

    const DispatcherStats& stats() const { return stats_; }
    const DeviceInfo& device() const { return device_; }

private:
    struct Entry {
        Problem shape;
        const Template* tmpl;
        Config config;
        double median_s;
        double tolerance;  // explicit accuracy budget it was verified under (0 = the dtype's)
    };
    // Tuned shapes that share op, dtype and every exact dim: the candidates for a nearest
    // match, with their log2 sizes stored contiguously (size_dims per entry).
    struct Group {
        std::vector<std::size_t> entries;
        std::vector<double> log_sizes;
    };
    struct ShapeHash {
        std::size_t operator()(const Problem& p) const noexcept { return ProblemHash{}(p); }
    };
    struct SameShape {
        bool operator()(const Problem& a, const Problem& b) const noexcept {
            return a.op == b.op && a.dtype == b.dtype && a.dims == b.dims && a.tolerance == b.tolerance;
        }
    };
    Selection resolve_unseen(const Problem& p) const;
    static Problem group_key(const Problem& p);  // p with its size dims and tolerance zeroed
    static Selection select(const Entry& e, LookupSource s);

    std::shared_ptr<const TemplateRegistry> registry_;
    DeviceInfo device_;
    std::vector<Entry> entries_;
    std::unordered_map<Problem, std::size_t, ShapeHash, SameShape> exact_;  // read-only after construction
    std::unordered_map<Problem, Group, ShapeHash, SameShape> groups_;       // read-only after construction
    DispatcherStats stats_;

    // Memo of answers for unseen shapes. Its Selections point into entries_ or defaults_,
    // never into the memo itself, so it can be cleared when full.
    static constexpr std::size_t kMemoCapacity = 1 << 16;
    mutable std::shared_mutex unseen_mutex_;
    mutable std::unordered_map<Problem, Selection, ShapeHash, SameShape> unseen_;
    // Per space (shared by many shapes): its default config, and which tuned configs it accepts.
    struct SpaceFacts {
        std::shared_ptr<const Space> space;  // keeps the pointer key alive
        std::unique_ptr<Config> default_config;
        std::vector<std::int8_t> accepts;     // per entry: -1 unknown, 0 no, 1 yes
    };
    mutable std::unordered_map<const Space*, SpaceFacts> spaces_;  // guarded by unseen_mutex_
    mutable std::mutex kernels_mutex_;
    mutable std::unordered_map<std::string, std::shared_ptr<const Kernel>> kernels_;
};

}  // namespace tune
