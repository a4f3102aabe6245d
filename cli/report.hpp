// The tuning report: what `tune report` gathers from a store, and its rendering as one
// self-contained HTML page (inline CSS and SVG; no script, no network).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tune {
class SqliteDatabase;
class TemplateRegistry;
}  // namespace tune

namespace tune::cli {

struct ReportData {
    std::string store;      // path, for the title
    std::string generated;  // UTC time stamp
    std::vector<std::string> facts;  // summary lines (runs, devices, measurements)

    // Search progress of one problem: every trial in the order it was measured; GFLOP/s of
    // the trial, 0 when it failed (it still used up a trial).
    struct Progress {
        std::string shape;
        std::vector<double> trial_gflops;
    };
    std::vector<Progress> progress;

    // Best measured time of a shape against baselines in the same store: baseline time / best
    // time (> 1: the tuned pick is faster).
    struct Speedup {
        std::string shape;
        std::vector<std::pair<std::string, double>> over;  // baseline name -> speedup
    };
    std::vector<Speedup> speedups;

    // Attention candidates of one shape: (workspace bytes, median seconds) of every ok trial.
    struct Tradeoff {
        std::string shape;
        std::vector<std::pair<double, double>> points;
    };
    std::vector<Tradeoff> attention;

    // Cost model: (predicted, measured) seconds; empty while the store holds no predictions.
    std::vector<std::pair<double, double>> predicted_vs_measured;
};

ReportData collect_report(const SqliteDatabase& db, const TemplateRegistry& registry, const std::string& store);
std::string render_html(const ReportData& data);

// Indices of the points no other point beats in both coordinates (smaller is better), sorted
// by the first coordinate.
std::vector<std::size_t> pareto_front(const std::vector<std::pair<double, double>>& points);

}  // namespace tune::cli
