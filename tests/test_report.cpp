// The report renderer (cli/report_html.cpp): Pareto front and the sections that render only
// when their data exists.
#include <catch2/catch.hpp>

#include "../cli/report.hpp"

using tune::cli::ReportData;

TEST_CASE("pareto front keeps exactly the points nothing beats in both time and workspace") {
    std::vector<std::pair<double, double>> pts{{0, 5}, {100, 3}, {50, 4}, {200, 3.5}, {400, 1}, {60, 4.5}, {0, 6}};
    CHECK(tune::cli::pareto_front(pts) == std::vector<std::size_t>{0, 2, 1, 4});
    CHECK(tune::cli::pareto_front({}).empty());
}

TEST_CASE("report renders attention and cost-model plots only when the data exists") {
    ReportData d;
    d.store = "t.db";
    d.progress.push_back({"gemm f32 m=1 n=2 k=3", {10, 0, 30, 20}});
    std::string empty = tune::cli::render_html(d);
    CHECK(empty.find("<svg id=\"progress-0\"") != std::string::npos);
    CHECK(empty.find("<svg id=\"pareto-") == std::string::npos);
    CHECK(empty.find("<svg id=\"cost-model\"") == std::string::npos);
    CHECK(empty.find("No data: the store holds no successful attention measurements") != std::string::npos);

    d.attention.push_back({"attention <causal> & more", {{0, 2e-3}, {4096, 1e-3}, {8192, 1.5e-3}}});
    d.predicted_vs_measured = {{1e-3, 1.1e-3}, {2e-3, 1.8e-3}};
    std::string full = tune::cli::render_html(d);
    CHECK(full.find("<svg id=\"pareto-0\"") != std::string::npos);
    CHECK(full.find("<svg id=\"cost-model\"") != std::string::npos);
    CHECK(full.find("No data: the store holds no successful attention") == std::string::npos);
    CHECK(full.find("No data: the store holds no cost-model predictions") == std::string::npos);
    CHECK(full.find("attention &lt;causal&gt; &amp; more") != std::string::npos);  // labels are escaped
    CHECK(full.find("<causal>") == std::string::npos);
}
