// Rules every store applies to a measurement: what makes one sound enough to keep or serve,
// which fields form its unique key, how the best of a group is chosen, and the timestamp.
#pragma once

#include <string>
#include <tuple>
#include <vector>

#include "tune/db/database.hpp"

namespace tune::db_rules {

// Why `m` cannot be stored or served, or "" when it is sound: the problem validates, the
// key fields are set, timings are finite and >= 0, counts are in range, an ok row has a
// positive median and a finite error.
std::string find_defect(const Measurement& m);

// Throws tune::Error("<context>: <defect>") when find_defect reports one.
void require_sound(const Measurement& m, const std::string& context);

// Why a confirmation cannot be stored or served, or "": the key fields and finalist set are
// set, the round is >= 0, timings are finite and >= 0 with a positive median, counts in range.
std::string find_confirmation_defect(const Confirmation& c);

// `best` (the fastest per (problem key, template)) with each group that has a confirmed pick
// (confirmed_picks, per template) replaced by it; best() of every store ends here.
std::vector<Measurement> with_confirmed_picks(const Database& db, const MeasurementFilter& filter,
                                              std::vector<Measurement> best);

// Throws tune::Error naming the field when a model row is unsound: name, template, device,
// format, body or feature names empty, or a schema < 1.
void require_sound_model(const StoredModel& model);

// (problem key, device, template, template version, config hash): one row per value.
using Key = std::tuple<std::string, std::string, std::string, std::string, std::string>;
Key unique_key(const Measurement& m);

bool matches(const MeasurementFilter& filter, const Measurement& m);

// The order of "fastest" in a store (best() groups, the Pareto front, pruning): smaller
// ranking_time, then smaller config hash (as SQL orders config_hash, the zero-padded hex).
bool faster(const Measurement& a, const Measurement& b);

// Current time as ISO-8601 UTC with milliseconds, e.g. "2024-05-01T12:34:56.789Z".
std::string utc_now();

// True when `text` looks like the timestamps utc_now() writes (date, 'T', time, 'Z').
bool is_timestamp(const std::string& text);

}  // namespace tune::db_rules
