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

TEST_CASE("a finalist's confirmed time is the fastest it reached twice", "[confirmation]") {
    CHECK(confirmed_time({3, 1, 2}) == 2);
    CHECK(confirmed_time({1.0, 1.3, 1.01}) == 1.01);
    CHECK(confirmed_time({1, 1}) == 1);
    CHECK(confirmed_time({5}) == 5);  // the only one
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
    CHECK(choice->confirmed_s == 1.00);  // reached twice (0.99 once)
}

TEST_CASE("rounds slowed by interference do not decide: the fastest time reached twice does", "[confirmation]") {
    // One of a's three rounds ran while something else loaded the machine (+50%); b never did.
    // a's own speed is still 2.5% better than b's, beyond the tie band.
    std::vector<FinalistTimes> f{{"t", "aaaa", {1.00, 1.50, 1.005}}, {"t", "0bbb", {1.03, 1.04, 1.03}}};
    auto choice = choose_confirmed(f);
    REQUIRE(choice);
    CHECK(f[choice->index].config_hash == "aaaa");
    CHECK(choice->tied == 1);
}

TEST_CASE("one lucky repetition does not decide", "[confirmation]") {
    // a came out 15% fast once (a turbo window) and is otherwise 5% slower than b.
    std::vector<FinalistTimes> f{{"t", "aaaa", {0.85, 1.00, 1.01}}, {"t", "bbbb", {0.95, 0.96, 0.95}}};
    auto choice = choose_confirmed(f);
    REQUIRE(choice);
    CHECK(f[choice->index].config_hash == "bbbb");
    CHECK(choice->confirmed_s == 0.95);
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
    CHECK(choice->fastest_s == 1.02);  // 0abc's second-fastest
    CHECK(choice->confirmed_s == 1.02);
    // The order the finalists come in does not matter.
    std::reverse(run1.begin(), run1.end());
    CHECK(picked(run1) == "0abc");
}

TEST_CASE("the template name orders before the config hash among tied finalists", "[confirmation]") {
    std::vector<FinalistTimes> f{{"vendor.onednn", "0000", {1.00, 1.00}}, {"cpu.gemm", "ffff", {1.01, 1.01}}};
    CHECK(picked(f) == "ffff");
}

TEST_CASE("a library's kernel comes first among tied finalists, and only among tied ones", "[confirmation]") {
    // The own kernel is 1.5% faster and sorts first by name: tied, so the library is the pick.
    std::vector<FinalistTimes> tied{{"cpu.gemm.blocked", "0000", {1.000, 1.000}},
                                    {"cpu.gemm.onednn", "ffff", {1.015, 1.015}, true}};
    auto choice = choose_confirmed(tied);
    REQUIRE(choice);
    CHECK(tied[choice->index].config_hash == "ffff");
    CHECK(choice->tied == 2);
    CHECK(choice->confirmed_s <= (1 + kTieRel) * choice->fastest_s);
    // 3% apart: the faster own kernel.
    std::vector<FinalistTimes> apart{{"cpu.gemm.blocked", "0000", {1.000, 1.000}},
                                     {"cpu.gemm.onednn", "ffff", {1.030, 1.030}, true}};
    CHECK(picked(apart) == "0000");
    // Two libraries tied: the name order again, not the faster (noise would choose).
    std::vector<FinalistTimes> libraries{{"cpu.gemm.openblas", "0000", {1.000, 1.000}, true},
                                         {"cpu.gemm.onednn", "ffff", {1.010, 1.010}, true},
                                         {"cpu.gemm.blocked", "1111", {1.005, 1.005}}};
    CHECK(picked(libraries) == "ffff");
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

TEST_CASE("close calls are contested: the fastest and every finalist within 6% of it", "[confirmation]") {
    // c is 5% behind a (either side of the tie band with more repetitions), b 2.5%, d 10%.
    std::vector<FinalistTimes> f{{"t", "b", {1.025}}, {"t", "d", {1.10}}, {"t", "a", {1.00}}, {"t", "c", {1.05}},
                                 {"t", "none", {}}};
    CHECK(contested(f) == std::vector<std::size_t>{0, 2, 3});
    // A clear winner: nothing to re-measure.
    std::vector<FinalistTimes> clear{{"t", "a", {1.00}}, {"t", "b", {1.07, 1.08}}};
    CHECK(contested(clear).empty());
    CHECK(contested({{"t", "a", {1.00}}}).empty());
    CHECK(contested({}).empty());
    // Ties count too: more repetitions may still part them.
    CHECK(contested({{"t", "a", {1.00}}, {"t", "b", {1.00}}}) == std::vector<std::size_t>{0, 1});
    // Settled: each finalist of the close call has hit its fastest time twice (within 1%).
    std::vector<FinalistTimes> settled{{"t", "a", {1.00, 1.3, 1.008}}, {"t", "b", {1.035, 1.03}}, {"t", "c", {1.5}}};
    CHECK(contested(settled).empty());
    settled[1].samples = {1.03, 1.05};  // b's fastest not repeated yet
    CHECK(contested(settled) == std::vector<std::size_t>{0, 1});
    // Confirmed 12% apart, but b once ran as fast as a's confirmed time: still a close call.
    std::vector<FinalistTimes> slowed{{"t", "a", {3.64, 4.41, 4.62, 3.71}}, {"t", "b", {3.55, 4.22, 4.57, 4.22}}};
    CHECK(contested(slowed) == std::vector<std::size_t>{0, 1});
    slowed[1].samples = {3.95, 4.22, 4.57, 4.22};  // b never came within 6%: a clear call
    CHECK(contested(slowed).empty());
}

TEST_CASE("a floor is repeated when the two fastest re-measurements are within 1%", "[confirmation]") {
    CHECK(floor_repeated({1.00, 1.009}));
    CHECK(floor_repeated({1.5, 1.00, 1.2, 1.009}));
    CHECK_FALSE(floor_repeated({1.00, 1.02, 1.5}));
    CHECK_FALSE(floor_repeated({1.00}));
    CHECK_FALSE(floor_repeated({}));
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
