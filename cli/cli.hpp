// Shared pieces of the `tune` command line: subcommand registration and output helpers.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "tune/problem.hpp"

namespace tune::cli {

void add_tune_commands(CLI::App& app);  // model, gemm, lookup
void add_db_commands(CLI::App& app);    // db list|show|export|import|verify

// Adds --<dim> options for every dim of p.op (from dim_specs) writing into `p`; sizes
// without a default are required when `required` is set.
void add_dim_options(CLI::App& cmd, Problem& p, bool required);

// Plain text table with aligned columns.
class Table {
public:
    explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    std::string str() const;

private:
    std::vector<std::vector<std::string>> rows_;
};

std::string format_seconds(double s);
std::string format_fixed(double v, int digits);

}  // namespace tune::cli
