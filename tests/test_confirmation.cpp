// The confirmation round's ranking rule (tune/confirmation.hpp) on scripted re-measurements:
// fastest when the gap is real, a stable order when the finalists are within 2%.
#include <algorithm>
#include <catch2/catch.hpp>

#include "tune/confirmation.hpp"

using namespace tune;

namespace {

const std::string& picked(const std::vector<FinalistTimes>& f) {
    auto choice = choose_confirmed(f);
    REQUIRE(choice);
    return f[choice->index].config_hash;
}

}  // namespace

TEST_CASE("a finalist's confirmed time is the fastest of its re-measurements", "[confirmation]") {
    CHECK(confirmed_time({3, 1, 2}) == 1);
    CHECK(confirmed_time({5}) == 5);
    CHECK_THROWS_WITH(confirmed_time({}), Catch::Contains("no re-measurements"));
}

TEST_CASE("a re-measurement ranks by its fastest repetition, else by its median", "[confirmation]") {
    TimingStats s;
    s.median_s = 2e-3;
    s.min_s = 1.5e-3;
    CHECK(ranking_time(s) == 1.5e-3);
    s.min_s = 0;  // not recorded
    CHECK(ranking_time(s) == 2e-3);
    s.min_s = 3e-3;  // inconsistent: a minimum above the median is not trusted
    CHECK(ranking_time(s) == 2e-3);
}

TEST_CASE("a clearly faster finalist wins whatever the stable order says", "[confirmation]") {
    // b sorts first, but a is 20% faster: a real gap.
    std::vector<FinalistTimes> f{{"t", "aaaa", {1.00, 1.01, 0.99}}, {"t", "0bbb", {1.20, 1.21, 1.19}}};
    auto choice = choose_confirmed(f);
    REQUIRE(choice);
    CHECK(choice->index == 0);
    CHECK(choice->tied == 1);
    CHECK(choice->confirmed_s == 0.99);
}

TEST_CASE("rounds slowed by interference do not decide: the fastest repetition does", "[confirmation]") {
    // Two of a's three rounds ran while something else loaded the machine (+50%, +100%);
    // b never did. a's own speed is still 3% better than b's, beyond the tie band.
    std::vector<FinalistTimes> f{{"t", "aaaa", {1.00, 1.50, 2.00}}, {"t", "0bbb", {1.03, 1.04, 1.03}}};
    auto choice = choose_confirmed(f);
    REQUIRE(choice);
    CHECK(f[choice->index].config_hash == "aaaa");
    CHECK(choice->tied == 1);
}

TEST_CASE("finalists within 2%: two noisy runs make the same pick", "[confirmation]") {
    // The same two configs, measured by two runs whose noise reorders them (1-1.5% apart at
    // their fastest, rounds spread by up to 5%): either may be fastest, both pick the smaller key.
    std::vector<FinalistTimes> run1{{"cpu.gemm", "f00d", {1.00, 1.03, 1.05}}, {"cpu.gemm", "0abc", {1.015, 1.06, 1.02}}};
    std::vector<FinalistTimes> run2{{"cpu.gemm", "0abc", {0.99, 1.02, 1.04}}, {"cpu.gemm", "f00d", {1.02, 1.05, 1.00}}};
    CHECK(picked(run1) == "0abc");
    CHECK(picked(run2) == "0abc");
    auto choice = choose_confirmed(run1);
    CHECK(choice->tied == 2);
    CHECK(choice->fastest_s == 1.00);
    CHECK(choice->confirmed_s == 1.015);
    // The order the finalists come in does not matter.
    std::reverse(run1.begin(), run1.end());
    CHECK(picked(run1) == "0abc");
}

TEST_CASE("the template name orders before the config hash among tied finalists", "[confirmation]") {
    std::vector<FinalistTimes> f{{"vendor.onednn", "0000", {1.00, 1.00}}, {"cpu.gemm", "ffff", {1.01, 1.01}}};
    CHECK(picked(f) == "ffff");
}

TEST_CASE("finalists within 2% tie and those beyond do not: a tie costs at most 2%", "[confirmation]") {
    std::vector<FinalistTimes> close{{"t", "bbbb", {1.000, 1.000, 1.000}}, {"t", "aaaa", {1.019, 1.019, 1.019}}};
    CHECK(picked(close) == "aaaa");
    std::vector<FinalistTimes> apart{{"t", "bbbb", {1.000, 1.000, 1.000}}, {"t", "aaaa", {1.025, 1.025, 1.025}}};
    auto choice = choose_confirmed(apart);
    REQUIRE(choice);
    CHECK(apart[choice->index].config_hash == "bbbb");
    CHECK(choice->confirmed_s <= (1 + kTieRel) * choice->fastest_s);
}

TEST_CASE("finalists without re-measurements take no part", "[confirmation]") {
    CHECK_FALSE(choose_confirmed({}));
    CHECK_FALSE(choose_confirmed({{"t", "aaaa", {}}}));
    std::vector<FinalistTimes> f{{"t", "0000", {}}, {"t", "aaaa", {2.0}}};
    CHECK(picked(f) == "aaaa");
}

TEST_CASE("a finalist set is named the same whatever the order of its members", "[confirmation]") {
    const std::string a = finalist_key("cpu.gemm", "v1", "00ff"), b = finalist_key("vendor.openblas", "v2", "1234");
    CHECK(finalist_set_id({a, b}) == finalist_set_id({b, a}));
    CHECK(finalist_set_id({a, b}).size() == 16);
    CHECK(finalist_set_id({a}) != finalist_set_id({a, b}));
    CHECK(finalist_key("x", "v1", "h") != finalist_key("x", "v2", "h"));
}
