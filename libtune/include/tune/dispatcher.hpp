// Dispatcher: the runtime side. Loads one or more stores once into an in-memory index and
// answers "which config for this shape" (exact hit, nearest tuned shape, template default)
// in nanoseconds, or runs the kernel directly. Thread-safe; the index never changes after
// construction, so every lookup in a process sees the same snapshot.
#pragma once

#include <atomic>
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
    const std::string* store = nullptr;   // name of the store that answered (exact / nearest)
};

struct DispatcherStats {
    std::size_t entries = 0;   // tuned shapes served
    std::size_t stale = 0;     // rows for another template version or an unknown template
    std::size_t rejected = 0;  // rows whose config failed validation (never executed)
    std::vector<std::string> rejections;  // one line per rejected row
};

// One store in an overlay, e.g. {"system", shipped_db} then {"user", my_db}.
struct StoreLayer {
    std::string name;
    const Database* db = nullptr;
};

struct DispatcherOptions {
    // Record mode: every shape served without an exact entry is counted and appended, with
    // its count, to this JSON-lines file on flush_record() and at destruction. Empty = off.
    std::filesystem::path record_path;
};

class Dispatcher {
public:
    // Reads the best ok measurements of `device` from each layer; a later layer's entry for a
    // shape overrides an earlier one's (user over system). Every config is validated against
    // its template's current space first; stale and invalid rows are not served.
    Dispatcher(std::vector<StoreLayer> layers, std::shared_ptr<const TemplateRegistry> registry,
               const DeviceInfo& device, DispatcherOptions options = {});
    Dispatcher(const Database& db, std::shared_ptr<const TemplateRegistry> registry, const DeviceInfo& device,
               DispatcherOptions options = {});
    ~Dispatcher();
    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    // Opens SQLite files read-only (never written) with the built-in templates of this CPU:
    // a system store and, optionally, a user store that overrides it. Record mode is on
    // when options say so or the environment variable LIBTUNE_RECORD names a file.
    static std::unique_ptr<Dispatcher> open(const std::filesystem::path& system_db,
                                            const std::filesystem::path& user_db = {},
                                            DispatcherOptions options = {});

    Selection lookup(const Problem& p) const;
    // lookup + instantiate (cached) + run.
    void run(const Problem& p, const OpArgs& args) const;

    // Appends the recorded misses counted since the last flush; no-op when recording is off.
    void flush_record() const;
    // Content hash of the served index (shapes, templates, versions, configs): applications
    // log it to know exactly which tuning results a process used.
    const std::string& snapshot_id() const { return snapshot_id_; }
    const DispatcherStats& stats() const { return stats_; }
    const DeviceInfo& device() const { return device_; }

private:
    struct Entry {
        Problem shape;
        const Template* tmpl;
        Config config;
        double median_s;
        double tolerance;   // explicit accuracy budget it was verified under (0 = the dtype's)
        std::size_t layer;  // index into layer_names_
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
    // An answer for an unseen shape, and how often it was asked since the last flush.
    struct Memo {
        Selection selection;
        mutable std::atomic<std::uint64_t> hits{0};
        explicit Memo(Selection s) : selection(s) {}
    };

    void load(const StoreLayer& layer, std::size_t index);
    Selection resolve_unseen(const Problem& p) const;
    Selection select(const Entry& e, LookupSource s) const;
    void flush_locked() const;  // caller holds unseen_mutex_ exclusively
    static Problem group_key(const Problem& p);  // p with its size dims and tolerance zeroed

    std::shared_ptr<const TemplateRegistry> registry_;
    DeviceInfo device_;
    DispatcherOptions options_;
    std::vector<std::string> layer_names_;
    std::vector<Entry> entries_;
    std::unordered_map<Problem, std::size_t, ShapeHash, SameShape> exact_;  // read-only after construction
    std::unordered_map<Problem, Group, ShapeHash, SameShape> groups_;       // read-only after construction
    DispatcherStats stats_;
    std::string snapshot_id_;

    // Memo of answers for unseen shapes. Its Selections point into entries_ or spaces_,
    // never into the memo itself, so it can be cleared when full (after a record flush).
    static constexpr std::size_t kMemoCapacity = 1 << 16;
    mutable std::shared_mutex unseen_mutex_;
    mutable std::unordered_map<Problem, Memo, ShapeHash, SameShape> unseen_;
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
