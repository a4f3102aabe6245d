// Dispatcher: the runtime side. Loads one or more stores once into an in-memory index and
// answers "which config for this shape" (exact hit, bucket representative, predicted, nearest
// tuned shape, template default) in nanoseconds, or runs the kernel directly. Thread-safe.
// The index changes only when online tuning publishes a result, never in frozen mode.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tune/buckets.hpp"
#include "tune/db/database.hpp"
#include "tune/kernel.hpp"
#include "tune/measurer.hpp"
#include "tune/tuner.hpp"

namespace tune {

namespace cost_model {
class GbdtModel;
}

// bucket: no entry for the shape itself; its bucket's representative (BucketRules) was tuned.
// predicted: no exact entry; the tuned neighbours' configs and the default were scored by how
// they measured on the nearest tuned shapes, the store's cost model standing in for what was
// not measured (only when the store holds a model for the template; cost_model::pick_unseen).
enum class LookupSource : std::uint8_t { exact, nearest, default_config, bucket, predicted };
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

// Fallback loss of serving a bucket's config to other shapes of the bucket, from the stored
// measurements: for each shape of the bucket on which the representative's config was
// measured, that time against the fastest config measured on the shape.
struct BucketRegret {
    Problem representative;
    std::string template_name, config;  // what the bucket serves
    struct Sample {
        Problem shape;
        double bucket_s = 0, best_s = 0;  // the bucket's config there; the best measured there
        double regret() const { return bucket_s / best_s - 1; }
    };
    std::vector<Sample> samples;
    double max_regret() const;
    double mean_regret() const;
};

// Opt-in tuning of shapes the store does not hold, after they miss `after_misses` times.
struct OnlineTuning {
    std::size_t after_misses = 0;  // 0 = off. Counts lookups of a shape without an exact entry.
    // If set, each shape is handed here (once, on the thread whose lookup reached the count;
    // it must return quickly) instead of to the background tuner. Results come back through
    // Dispatcher::publish.
    std::function<void(const Problem&)> on_request;
    // Background tuner: one thread, one shape at a time, results recorded in `store` (the
    // user DB) and published to later lookups (unless frozen).
    Database* store = nullptr;
    TuneOptions tune = [] {  // per shape
        TuneOptions t;
        t.budget = 8;
        t.time_limit_s = 10;
        return t;
    }();
    double total_time_s = 60;  // for all shapes, per process
    MeasureOptions measure = [] {  // in process, not pinned: the application keeps its CPUs
        MeasureOptions m;
        m.pin_cpu = -1;
        return m;
    }();
    // Called on the background thread after each job (best is empty when none was correct).
    std::function<void(const Problem&, const std::optional<Measurement>& best)> on_tuned;
};

struct OnlineStats {
    std::size_t requested = 0;  // shapes queued or handed to on_request
    std::size_t tuned = 0;      // jobs finished with a correct config
    std::size_t failed = 0;     // jobs with no correct config, or that threw
    std::size_t skipped = 0;    // dropped because the total time cap was spent
    double spent_s = 0;         // background tuning time so far
};

struct DispatcherOptions {
    // Record mode: every shape served without an exact entry is counted and appended, with
    // its count, to this JSON-lines file on flush_record() and at destruction. Empty = off.
    std::filesystem::path record_path;
    // Shape buckets; empty = none (open() then uses the rules stored in the DBs).
    BucketRules buckets;
    // Frozen: what a lookup answers never changes during the process (the snapshot taken at
    // open); online tuning still records its results, for the next process.
    bool frozen = false;
    OnlineTuning online;
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

    // Opens SQLite files read-only with the built-in templates of this CPU: a system store
    // (an empty path: none, every shape gets its template's default) and, optionally, a user
    // store that overrides it. Record mode is on when options say so
    // or the environment variable LIBTUNE_RECORD names a file. Bucket rules come from the
    // stores (the user's over the system's) unless options give some. Online tuning without
    // on_request or a store writes to the user store (opened a second time, read-write);
    // the system store is never written.
    static std::unique_ptr<Dispatcher> open(const std::filesystem::path& system_db,
                                            const std::filesystem::path& user_db = {},
                                            DispatcherOptions options = {});

    Selection lookup(const Problem& p) const;
    // The fastest config for p whose workspace is at most max_workspace_bytes: from p's stored
    // Pareto front of (time, workspace) when p was tuned (source exact), else what lookup(p)
    // serves when its template reports a workspace within the cap. An empty Selection (tmpl
    // null) when nothing known fits. Fronts are those of the stores read at construction.
    // The template's count of a config's workspace decides, not the stored figure: a damaged
    // figure can leave a slower config served, never one over the cap.
    Selection lookup_under(const Problem& p, std::size_t max_workspace_bytes) const;
    // lookup + instantiate (cached) + run. The cache holds up to kKernelCacheCapacity kernels
    // whose workspaces (each may keep its scratch memory) add up to at most kKernelCacheBytes,
    // and starts over when a new one would exceed either: a decode loop makes a new attention
    // shape per token, a server sees many prompt lengths, and neither must grow forever.
    // Throws tune::InvalidArgument when a GEMM or SwiGLU output shares memory with an input.
    void run(const Problem& p, const OpArgs& args) const;
    static constexpr std::size_t kKernelCacheCapacity = 1024;
    static constexpr std::size_t kKernelCacheBytes = std::size_t{512} << 20;
    std::size_t cached_kernels() const;

    // Appends the recorded misses counted since the last flush; no-op when recording is off.
    // Throws when the file cannot be appended to (the counts are kept for the next flush).
    // Lookups never fail for the record: the file is checked at construction, and a later
    // failed append (a full disk) while the memo starts over loses only those counts.
    void flush_record() const;
    // Content hash of the served index (shapes, templates, versions, configs): applications
    // log it to know exactly which tuning results a process used. Changes only on publish.
    const std::string& snapshot_id() const { return index_.load(std::memory_order_acquire)->snapshot_id; }
    const DispatcherStats& stats() const { return stats_; }
    const DeviceInfo& device() const { return device_; }
    const BucketRules& buckets() const { return options_.buckets; }

    // Regret of each bucket whose representative is served, from the measurements loaded at
    // construction; sorted by representative key.
    const std::vector<BucketRegret>& bucket_regrets() const { return regrets_; }
    // The regret of the bucket that holds p; nullptr when p is in no measured bucket.
    const BucketRegret* bucket_regret(const Problem& p) const;

    // Serves a new ok measurement (e.g. an online tuning result) to later lookups, after the
    // same checks as a stored row. Returns false, changing nothing, in frozen mode, for a
    // stale/unknown template or an invalid config. Selections handed out stay valid.
    bool publish(const Measurement& m);
    OnlineStats online_stats() const;

private:
    // A config of a template: what a shape's measurements are keyed by.
    struct ConfigKey {
        const Template* tmpl = nullptr;
        std::uint64_t config_hash = 0;
        auto operator<=>(const ConfigKey&) const = default;
    };
    // A measured config of a tuned shape: its ranking time and its equivalence class there
    // (Template::equivalence_key: configs of one class run the same kernel at that shape; for a
    // template without a model, whose rows no unseen pick reads, the config's own hash).
    struct Timed {
        double seconds = 0;
        std::uint64_t class_hash = 0;
    };
    // Every served-quality time of one tuned shape, sorted by key (later layers' times win).
    using ShapeTimes = std::vector<std::pair<ConfigKey, Timed>>;
    struct Entry {
        Problem shape;
        const Template* tmpl;
        Config config;
        double median_s;    // what a lookup reports
        double rank_s;      // what entries compare by: ranking_time
        double tolerance;   // explicit accuracy budget it was verified under (0 = the dtype's)
        std::size_t layer;  // index into layer_names_
        std::uint64_t config_hash;
        std::int64_t workspace_bytes = 0;
        std::shared_ptr<const ShapeTimes> times;  // null: only this config is known
    };
    // Tuned shapes that share op, dtype and every exact dim: the candidates for a nearest
    // match, with their log2 sizes stored contiguously (size_dims per entry). For unseen
    // shapes, the group's candidate configs (`columns`: each entry's winner and each entry's
    // space's default, sorted) and, per entry, the loss of those measured there (a config's
    // loss is its equivalence class's: the fastest member measured there) or, with a model,
    // predicted for it (cell_columns and cell_losses [cell_begin[r], cell_begin[r + 1]),
    // sorted by column), computed once per index. Columns and losses apart: a lookup runs up
    // to 72 searches (9 candidates x 8 rows) over the columns, which a dense array keeps in cache.
    struct Group {
        std::vector<std::size_t> entries;
        std::vector<double> log_sizes;
        std::vector<ConfigKey> columns;
        std::vector<std::uint32_t> winner_column;  // per entry of the group
        std::vector<std::uint32_t> cell_begin;     // entries + 1
        std::vector<std::uint32_t> cell_columns;
        std::vector<float> cell_losses;
    };
    struct ShapeHash {
        std::size_t operator()(const Problem& p) const noexcept { return ProblemHash{}(p); }
    };
    struct SameShape {
        bool operator()(const Problem& a, const Problem& b) const noexcept {
            return a.op == b.op && a.dtype == b.dtype && a.dims == b.dims && a.tolerance == b.tolerance &&
                   a.scale == b.scale;
        }
    };
    // One immutable snapshot of the served entries. Lookups read the current one through an
    // atomic pointer; publish() swaps in a new one and keeps the old (Selections point into it).
    struct Index {
        std::vector<Entry> entries;
        std::unordered_map<Problem, std::size_t, ShapeHash, SameShape> exact;
        std::unordered_map<Problem, Group, ShapeHash, SameShape> groups;
        std::string snapshot_id;
    };
    // An answer for an unseen shape, and how often it was asked since the last flush.
    struct Memo {
        Selection selection;
        mutable std::atomic<std::uint64_t> hits{0};
        mutable std::atomic<std::uint64_t> misses{0};  // online tuning
        explicit Memo(Selection s) : selection(s) {}
    };
    // Times of every served-quality measurement per shape, while loading.
    using TimesMap = std::unordered_map<Problem, std::map<ConfigKey, Timed>, ShapeHash, SameShape>;

    using EntryMap = std::unordered_map<Problem, Entry, ShapeHash, SameShape>;
    void load(const StoreLayer& layer, std::size_t index, TimesMap& times, EntryMap& merged);
    std::optional<Entry> checked_entry(const Measurement& m, std::size_t layer, std::string* why) const;
    std::unique_ptr<Index> build_index(std::vector<Entry> entries) const;  // needs models_ loaded
    void add_unseen_evidence(Index& ix) const;  // dispatcher_unseen.cpp
    void compute_regrets(const TimesMap& times);
    void load_models(const StoreLayer& layer);
    // Whether entry i of ix is valid for p (cached per space); caller holds unseen_mutex_.
    struct SpaceFacts;
    SpaceFacts& facts_of(const Template& t, const Problem& p) const;  // of t's space for p
    bool valid_here(const Index& ix, const Problem& p, std::size_t i) const;
    bool accepted(const Index& ix, SpaceFacts& facts, std::size_t i) const;  // facts of p's space
    // t.default_config(p), interned in its space's facts (a stable pointer for Selections),
    // with its hash; caller holds unseen_mutex_.
    struct ShapeDefault {
        const Config* config;
        std::uint64_t hash;
    };
    ShapeDefault shape_default(const Template& t, const Problem& p) const;
    // The pick among the default and the valid configs of the nearest entries of group g
    // (`near`: distance and index into g.entries, reordered here); caller holds unseen_mutex_
    // exclusively. Empty (no tmpl) when no model applies.
    Selection predict_unseen(const Problem& p, const Index& ix, const Group& g,
                             std::vector<std::pair<double, std::size_t>>& near) const;
    Selection resolve_unseen(const Problem& p) const;
    Selection select(const Entry& e, LookupSource s) const;
    // True exactly when this miss brings the shape to OnlineTuning::after_misses (never when off).
    bool reached_miss_count(const Memo& memo) const {
        return options_.online.after_misses &&
               memo.misses.fetch_add(1, std::memory_order_relaxed) + 1 == options_.online.after_misses;
    }
    void request_tuning(const Problem& p) const;
    void flush_locked() const;  // caller holds unseen_mutex_ exclusively; throws when the append fails
    void flush_locked(std::nothrow_t) const;  // the same, never throwing: lookups and publish() never fail for it
    static Problem group_key(const Problem& p);  // p with its size dims and tolerance zeroed
    void start_online();
    void online_loop();

    std::shared_ptr<const TemplateRegistry> registry_;
    DeviceInfo device_;
    DispatcherOptions options_;
    std::vector<std::string> layer_names_;
    std::atomic<const Index*> index_{nullptr};
    std::vector<std::unique_ptr<const Index>> indexes_;  // every index published; guarded by publish_mutex_
    std::mutex publish_mutex_;
    std::vector<BucketRegret> regrets_;
    // Per tuned shape, its Pareto front of (time, workspace), fastest first (lookup_under).
    // The front comes from the stored workspace figures; a front entry serves under a cap
    // only when its template's own count fits too (counted_workspace, memoised per entry).
    std::unordered_map<Problem, std::vector<Entry>, ShapeHash, SameShape> fronts_;
    std::size_t counted_workspace(const Problem& p, const Entry& e) const;
    mutable std::mutex counted_mutex_;
    mutable std::unordered_map<const Entry*, std::size_t> counted_;
    DispatcherStats stats_;

    // Memo of answers for unseen shapes. Its Selections point into entries_ or spaces_,
    // never into the memo itself, so it can be cleared when full (after a record flush).
    static constexpr std::size_t kMemoCapacity = 1 << 16;
    mutable std::shared_mutex unseen_mutex_;
    mutable std::unordered_map<Problem, Memo, ShapeHash, SameShape> unseen_;
    // Miss counts of shapes whose memo publish() dropped (a better answer may exist now): the
    // shape's next memo starts from its count, so each publish does not restart every count.
    mutable std::unordered_map<Problem, std::uint64_t, ShapeHash, SameShape> carried_misses_;  // unseen_mutex_
    // Per space (shared by many shapes): its default config, and which tuned configs it accepts.
    struct SpaceFacts {
        std::shared_ptr<const Space> space;  // keeps the pointer key alive
        // Template::default_config of shapes served by default (a few per space: one per shape
        // class the template tells apart), interned so Selections can point at them.
        std::vector<std::unique_ptr<Config>> shape_defaults;
        std::vector<std::uint64_t> shape_default_hashes;  // of shape_defaults, in order
        std::vector<std::int8_t> accepts;     // per entry of accepts_for: -1 unknown, 0 no, 1 yes
        const Index* accepts_for = nullptr;
    };
    mutable std::unordered_map<const Space*, SpaceFacts> spaces_;  // guarded by unseen_mutex_
    // Cost models per template (a later layer's replaces an earlier one's); empty: no prediction.
    std::unordered_map<const Template*, std::shared_ptr<const cost_model::GbdtModel>> models_;
    // The templates with a model, in TemplateRegistry::for_problem's order: a predicted lookup
    // walks these instead of building that list for every shape.
    std::vector<const Template*> model_templates_;
    // Kernels run() built, by shape and selected config. A Selection's config pointer names one
    // config of one template for the dispatcher's lifetime (entries and defaults are never
    // freed before it), so it keys the cache without formatting or comparing configs.
    struct KernelKey {
        Problem problem;
        const Template* tmpl;
        const Config* config;
        friend bool operator==(const KernelKey&, const KernelKey&) = default;
    };
    struct KernelKeyHash {
        std::size_t operator()(const KernelKey& k) const noexcept;
    };
    mutable std::shared_mutex kernels_mutex_;
    // Shared: a run in flight keeps its kernel alive when the cache starts over meanwhile.
    mutable std::unordered_map<KernelKey, std::shared_ptr<const Kernel>, KernelKeyHash> kernels_;
    mutable std::size_t kernel_bytes_ = 0;  // the cached kernels' workspace_bytes(), summed

    // Online tuning: shapes requested once each, a queue for the background thread.
    mutable std::mutex online_mutex_;
    mutable std::condition_variable online_wake_;
    mutable std::set<std::string> online_requested_;  // shape keys
    mutable std::deque<Problem> online_queue_;
    mutable OnlineStats online_stats_;
    bool online_stop_ = false;
    std::unique_ptr<Database> owned_store_;  // open(): the user store, read-write
    std::thread online_thread_;
};

}  // namespace tune
