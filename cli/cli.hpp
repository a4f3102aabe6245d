// Shared pieces of the `tune` command line: subcommand registration and output helpers.
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tune/executor.hpp"
#include "tune/measurer.hpp"
#include "tune/problem.hpp"

namespace tune::cli {

void add_tune_commands(CLI::App& app);  // model, gemm, lookup
void add_db_commands(CLI::App& app);    // db list|show|export|import|verify
void add_report_command(CLI::App& app);  // report --db --html
void add_housekeeping_commands(CLI::App& db_cmd);  // db stats|prune

// The --<dim> options of one or more ops (from dim_specs), kept as text until the op is
// known; then parsed by the one dim parser (labels by name, no silent clamping).
class DimOptions {
public:
    void add_to(CLI::App& cmd, std::initializer_list<OpKind> ops);
    // Throws tune::Error naming the flag: a missing size, a bad value, or a dim of another op.
    Problem problem(OpKind op, DType dtype) const;

private:
    std::map<std::string, std::string> given_;  // dim name -> text
};

// Plain text table with aligned columns.
class Table {
public:
    explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    std::string str() const;

private:
    std::vector<std::vector<std::string>> rows_;
};

// tune ... --mpi (mpi_run.cpp): rank 0 coordinates and stores, the other ranks measure.
class MpiRun {
public:
    virtual ~MpiRun() = default;
    // Rank 0: the executor the Tuner measures through. Null on a measuring rank, which has
    // already served rank 0 until the run ended when start_mpi returns.
    virtual Executor* coordinator() = 0;
    virtual std::string summary() const = 0;             // "3 ranks: ..."
    virtual std::vector<std::string> lost() const = 0;   // ranks lost during the run, and why
};
// Throws tune::Error when this build has no MPI. rank_timeout_s: a measuring rank silent
// this long is declared lost.
std::unique_ptr<MpiRun> start_mpi(const DeviceInfo& device, const TemplateRegistry& registry, Measurer& measurer,
                                  double rank_timeout_s);

std::string format_seconds(double s);
std::string format_fixed(double v, int digits);

}  // namespace tune::cli
