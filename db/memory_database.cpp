// The in-memory Database: the same rules as the SQLite store (unique key, sound rows only,
// best per (problem key, template)) over a vector guarded by a mutex.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "rows.hpp"
#include "tune/db/database.hpp"
#include "tune/error.hpp"

namespace tune {

namespace {

class MemoryDatabase final : public Database {
public:
    std::int64_t start_run(const RunInfo& run, const DeviceInfo& device) override {
        std::lock_guard lock(mutex_);
        RunInfo stored = run;
        stored.id = static_cast<std::int64_t>(runs_.size()) + 1;
        stored.device_id = device.id();
        stored.started_at = db_rules::utc_now();
        runs_.push_back(stored);
        return stored.id;
    }

    bool record(const Measurement& m) override {
        db_rules::require_sound(m, "record");
        std::lock_guard lock(mutex_);
        require(m.run_id <= static_cast<std::int64_t>(runs_.size()),
                "record: unknown run_id " + std::to_string(m.run_id));
        if (!keys_.insert(db_rules::unique_key(m)).second) return false;
        Measurement stored = m;
        stored.id = static_cast<std::int64_t>(rows_.size()) + 1;
        stored.created_at = db_rules::utc_now();
        rows_.push_back(std::move(stored));
        return true;
    }

    std::vector<Measurement> query(
        const MeasurementFilter& filter,
        const std::function<void(std::int64_t, const std::string&)>&) const override {
        std::lock_guard lock(mutex_);
        std::vector<Measurement> out;
        for (const Measurement& m : rows_)
            if (db_rules::matches(filter, m)) out.push_back(m);
        return out;
    }

    std::vector<Measurement> best(const MeasurementFilter& filter) const override {
        MeasurementFilter ok = filter;
        ok.status = Status::ok;
        std::map<std::pair<std::string, std::string>, Measurement> winners;
        for (Measurement& m : query(ok, {})) {
            auto [it, fresh] = winners.try_emplace({shape_key(m.problem), m.template_name}, m);
            if (!fresh && db_rules::faster(m, it->second)) it->second = std::move(m);
        }
        std::vector<Measurement> out;
        for (auto& [key, m] : winners) out.push_back(std::move(m));
        return db_rules::with_confirmed_picks(*this, filter, std::move(out));
    }

    bool record_confirmation(const Confirmation& c) override {
        if (auto why = db_rules::find_confirmation_defect(c); !why.empty()) throw Error("record_confirmation: " + why);
        std::lock_guard lock(mutex_);
        auto key = std::tuple{c.problem_key, c.device_id, c.template_name, c.template_version, c.config_hash,
                              c.finalists, c.round};
        if (!confirmation_keys_.insert(key).second) return false;
        Confirmation stored = c;
        stored.id = static_cast<std::int64_t>(confirmations_.size()) + 1;
        stored.snapshot = 0;
        for (const Measurement& m : rows_)
            if (m.device_id == c.device_id && shape_key(m.problem) == c.problem_key) stored.snapshot = m.id;
        stored.created_at = db_rules::utc_now();
        confirmations_.push_back(std::move(stored));
        return true;
    }

    std::vector<Confirmation> confirmations(const MeasurementFilter& f) const override {
        std::lock_guard lock(mutex_);
        std::vector<Confirmation> out;
        for (const Confirmation& c : confirmations_)
            if ((f.problem_key.empty() || f.problem_key == c.problem_key) &&
                (f.device_id.empty() || f.device_id == c.device_id) &&
                (f.template_name.empty() || f.template_name == c.template_name) &&
                (f.template_version.empty() || f.template_version == c.template_version))
                out.push_back(c);
        return out;
    }

    void save_model(const StoredModel& model) override {
        db_rules::require_sound_model(model);
        std::lock_guard lock(mutex_);
        StoredModel stored = model;
        stored.created_at = db_rules::utc_now();
        models_[{model.name, model.template_name, model.device_id}] = std::move(stored);
    }

    std::optional<StoredModel> load_model(const std::string& name, const std::string& template_name,
                                          const std::string& device_id) const override {
        std::lock_guard lock(mutex_);
        auto it = models_.find({name, template_name, device_id});
        if (it == models_.end()) return std::nullopt;
        return it->second;
    }

private:
    mutable std::mutex mutex_;
    std::map<std::tuple<std::string, std::string, std::string>, StoredModel> models_;
    std::vector<RunInfo> runs_;
    std::vector<Measurement> rows_;
    std::set<db_rules::Key> keys_;
    std::vector<Confirmation> confirmations_;
    std::set<std::tuple<std::string, std::string, std::string, std::string, std::string, std::string, int>>
        confirmation_keys_;
};

}  // namespace

std::unique_ptr<Database> make_memory_database() { return std::make_unique<MemoryDatabase>(); }

}  // namespace tune
