// Dispatcher: publishing new results and online tuning of shapes that keep missing. The
// lookup path only counts misses; queueing, tuning and publishing happen off it.
#include <chrono>
#include <limits>

#include "tune/dispatcher.hpp"
#include "tune/error.hpp"

namespace tune {
namespace {

// Thrown from the tuner's progress hook to end a job when the dispatcher shuts down.
struct ShuttingDown {};

}  // namespace

bool Dispatcher::publish(const Measurement& m) {
    if (options_.frozen || m.status != Status::ok || m.device_id != device_.id()) return false;
    std::string why;
    auto entry = checked_entry(m, layer_names_.size() - 1, &why);  // the "published" layer
    if (!entry) return false;
    {
        std::lock_guard lock(publish_mutex_);
        const Index& current = *index_.load(std::memory_order_acquire);
        std::vector<Entry> entries = current.entries;
        if (auto it = current.exact.find(m.problem); it != current.exact.end()) {
            if (entries[it->second].rank_s <= entry->rank_s) return false;  // not faster
            entries[it->second] = std::move(*entry);
        } else {
            entries.push_back(std::move(*entry));  // appended: earlier entries keep their index
        }
        auto next = build_index(std::move(entries));
        index_.store(next.get(), std::memory_order_release);
        indexes_.push_back(std::move(next));
    }
    // Memoised answers for unseen shapes may now have a better one (nearest, bucket).
    std::unique_lock lock(unseen_mutex_);
    flush_locked(std::nothrow);  // the published result stands whether or not the record is written
    if (const std::uint64_t after = options_.online.after_misses; after > 0 && carried_misses_.size() < kMemoCapacity)
        for (const auto& [shape, memo] : unseen_)
            if (const std::uint64_t n = memo.misses.load(std::memory_order_relaxed); n > 0 && n < after)
                carried_misses_[shape] = n;  // not yet requested
    unseen_.clear();
    return true;
}

OnlineStats Dispatcher::online_stats() const {
    std::lock_guard lock(online_mutex_);
    return online_stats_;
}

void Dispatcher::request_tuning(const Problem& p) const {
    {
        std::lock_guard lock(online_mutex_);
        if (!online_requested_.insert(shape_key(p)).second) return;  // one job per shape
        ++online_stats_.requested;
        if (!options_.online.on_request) {
            online_queue_.push_back(p);
            online_wake_.notify_one();
            return;
        }
    }
    options_.online.on_request(p);
}

void Dispatcher::start_online() {
    const OnlineTuning& o = options_.online;
    if (o.after_misses == 0 || o.on_request) return;
    require(o.store != nullptr, "dispatcher: online tuning needs a store to write results to (OnlineTuning::store)");
    require(o.total_time_s >= 0, "dispatcher: online tuning total_time_s must be >= 0");
    online_thread_ = std::thread([this] { online_loop(); });
}

void Dispatcher::online_loop() {
    const OnlineTuning& o = options_.online;
    std::unique_ptr<Measurer> measurer;
    std::unique_ptr<Tuner> tuner;
    for (;;) {
        Problem p;
        {
            std::unique_lock lock(online_mutex_);
            online_wake_.wait(lock, [&] { return online_stop_ || !online_queue_.empty(); });
            if (online_stop_) return;
            p = online_queue_.front();
            online_queue_.pop_front();
            if (online_stats_.spent_s >= o.total_time_s) {
                ++online_stats_.skipped;
                continue;
            }
        }
        std::optional<Measurement> best;
        const auto start = std::chrono::steady_clock::now();
        try {
            if (!tuner) {  // first job: only now does the store get a run
                measurer = std::make_unique<Measurer>(device_, o.measure);
                auto run = o.store->start_run({0, "online tuning (dispatcher)", o.tune.strategy, o.tune.seed, "", ""},
                                              device_);
                tuner = std::make_unique<Tuner>(*o.store, *registry_, *measurer, run);
            }
            TuneOptions options = o.tune;
            double left;
            {
                std::lock_guard lock(online_mutex_);
                left = o.total_time_s - online_stats_.spent_s;
            }
            options.time_limit_s = options.time_limit_s > 0 ? std::min(options.time_limit_s, left) : left;
            options.on_progress = [this](const TuneProgress&) {
                std::lock_guard lock(online_mutex_);
                if (online_stop_) throw ShuttingDown{};
            };
            best = tuner->tune(p, options).best;
            if (best) publish(*best);
        } catch (const ShuttingDown&) {
            return;
        } catch (const std::exception&) {
            best.reset();  // counted as failed; the shape keeps its current answer
        }
        {
            std::lock_guard lock(online_mutex_);
            online_stats_.spent_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            ++(best ? online_stats_.tuned : online_stats_.failed);
        }
        if (o.on_tuned) o.on_tuned(p, best);
    }
}

}  // namespace tune
