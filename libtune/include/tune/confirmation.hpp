// Confirmation: a finalist's re-measurement in the Tuner's confirmation round, as the store
// keeps it, and the one rule that ranks finalists by their re-measurements (used by the Tuner
// for its pick and by the store for its best per shape).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tune/measurement.hpp"

namespace tune {

struct Confirmation {
    std::int64_t id = 0;      // assigned by the store
    std::int64_t run_id = 0;
    // The finalist: the unique key of its measurement row.
    std::string problem_key, device_id, template_name, template_version, config_hash;
    std::string finalists;    // finalist_set_id() of the round it was ranked in
    int round = 0;            // 0-based pass over the finalists
    TimingStats stats;        // of an ok re-measurement (failed ones are not kept)
    bool vendor = false;      // the finalist's template wraps a library (TemplateInfo::vendor)
    // Set by the store: the newest measurement row id of the shape on this device when this
    // was stored. A later row (a new candidate) makes the round out of date.
    std::int64_t snapshot = 0;
    std::string created_at;   // set by the store
};

// Names a finalist set: the same keys give the same id in any run or order, so a resumed run
// finds the re-measurements an interrupted one stored. The Tuner adds a key for the shape's
// newest stored row, so a round from before later rows is not taken for a current one.
std::string finalist_set_id(std::vector<std::string> finalist_keys);
// "template|version|config_hash": a finalist's entry in finalist_set_id.
std::string finalist_key(const std::string& template_name, const std::string& template_version,
                         const std::string& config_hash);

// The ranking rule. A finalist's confirmed time is the fastest time it reached twice: the
// second-fastest of its re-measurements (ranking_time of each), or the only one. Interference
// from other work (processes, a neighbour VM's memory traffic, frequency dips) mostly adds
// time, so a low order statistic is what repeats across runs on a shared machine, where medians
// of rounds minutes apart vary by tens of percent; but a single repetition can also come out
// 10-20% fast (a turbo window), and the plain minimum would let that one decide. Finalist i ties
// with the fastest f when t_i - t_f <= kTieRel * t_f. Among the tied a library's kernel comes
// first (a pick tied with a library is the library: the tuned pick is then never slower than it
// by more than noise can tell), then the smallest (template name, config hash), so two runs
// whose noise reorders near-equal finalists still agree. Tied libraries go by name too, not by
// time: two libraries often run within 1% of each other (oneDNN and OpenBLAS on large f32
// GEMMs), and a time order would let noise choose between them, so that an MPI run and a
// one-process run of the same tuning would disagree. The pick is never more than kTieRel
// slower than the fastest confirmed time.
inline constexpr double kTieRel = 0.02;  // the measurement protocol's CI target

struct FinalistTimes {
    std::string template_name;
    std::string config_hash;      // Config::hash_hex()
    std::vector<double> samples;  // ranking_time of each re-measurement, any order
    bool vendor = false;          // a library's kernel: first among tied finalists
};

struct ConfirmedChoice {
    std::size_t index = 0;   // into the finalists
    double confirmed_s = 0;  // the pick's confirmed time
    double fastest_s = 0;    // the fastest confirmed time
    std::size_t tied = 1;    // finalists tied with the fastest (the pick included)
};

double confirmed_time(const std::vector<double>& samples);  // second-fastest (or only); throws on none

// Finalists without samples take no part; nullopt when none has any.
std::optional<ConfirmedChoice> choose_confirmed(const std::vector<FinalistTimes>& finalists);

// A close call: finalists whose fastest re-measurement is within kContestRel of the fastest
// confirmed time could still land on either side of the tie band with more repetitions (on a
// shared machine a config's fast repetitions move by several percent between runs, and slow
// passes can put 10% between the confirmed times of two configs that once ran equally fast).
// Such a call is settled once each of those finalists has repeated its fastest time: its two
// fastest re-measurements within kFloorRel of each other, so its confirmed time is a floor hit
// twice, not one lucky or one still-disturbed run. contested() returns the finalists of an unsettled close call (the
// fastest and those within kContestRel of it, in finalist order), which the Tuner re-measures
// one round at a time (TuneOptions::contest_rounds); empty when there is no close call or it
// is settled.
inline constexpr double kContestRel = 3 * kTieRel;
inline constexpr double kFloorRel = kTieRel / 2;
bool floor_repeated(const std::vector<double>& samples);
std::vector<std::size_t> contested(const std::vector<FinalistTimes>& finalists);

}  // namespace tune
