// Search strategies: reproducible, never repeat a config, respect the space.
#include <catch2/catch.hpp>
#include <set>

#include "tune/error.hpp"
#include "tune/search/strategy.hpp"

using namespace tune;

namespace {
std::shared_ptr<const Space> space() {
    auto s = std::make_shared<Space>();
    s->add(Knob::pow2("a", 1, 16, 4));
    s->add(Knob::pow2("b", 1, 16, 4));
    s->add(Knob::categorical("c", {"x", "y", "z"}, "x"));
    s->require("a_le_b", [](const Config& c) { return c.get_int("a") <= c.get_int("b"); });
    return s;
}
// Synthetic cost with its minimum at a=b=16, c=z.
double cost(const Config& c) {
    return 100.0 / double(c.get_int("a") * c.get_int("b")) + (c.get_str("c") == "z" ? 0 : 1);
}
std::vector<Config> drive(const std::string& name, std::uint64_t seed, std::size_t budget) {
    auto s = make_strategy(name, space(), {seed, 4096, nullptr});
    std::vector<Config> seen;
    while (seen.size() < budget) {
        auto batch = s->propose(std::min<std::size_t>(4, budget - seen.size()));
        if (batch.empty()) break;
        std::vector<Trial> trials;
        for (auto& c : batch) {
            trials.push_back({c, true, cost(c)});
            seen.push_back(c);
        }
        s->observe(trials);
    }
    return seen;
}
}  // namespace

TEST_CASE("every strategy is reproducible with a seed and never repeats a config", "[search]") {
    for (const auto& entry : strategies()) {
        DYNAMIC_SECTION(entry.name) {
            auto a = drive(entry.name, 11, 30), b = drive(entry.name, 11, 30);
            CHECK(a == b);
            std::set<std::uint64_t> hashes;
            for (const auto& c : a) {
                CHECK_FALSE(space()->violation(c));
                hashes.insert(c.hash());
            }
            CHECK(hashes.size() == a.size());
        }
    }
}

TEST_CASE("exhaustive visits the whole space and then stops", "[search]") {
    auto all = drive("exhaustive", 0, 1000);
    CHECK(all.size() == space()->count());
}

TEST_CASE("exhaustive refuses a space larger than its cap", "[search]") {
    CHECK_THROWS_WITH(make_strategy("exhaustive", space(), {0, 10, nullptr}), Catch::Contains("more than 10"));
}

TEST_CASE("random and annealing stop when the space is used up", "[search]") {
    std::size_t n = space()->count();
    CHECK(drive("random", 3, 1000).size() == n);
    CHECK(drive("annealing", 3, 1000).size() == n);
}

TEST_CASE("every strategy reaches the whole of a space whose constraints reject nearly every draw", "[search]") {
    // 60 valid configs of 216,000 (a = b = c): random draws almost never hit one.
    auto s = std::make_shared<Space>();
    std::vector<std::int64_t> values;
    for (std::int64_t i = 0; i < 60; ++i) values.push_back(i);
    for (const char* name : {"a", "b", "c"}) s->add(Knob::ints(name, values, 0));
    s->require("diagonal", [](const Config& c) { return c.get_int("a") == c.get_int("b") && c.get_int("b") == c.get_int("c"); });
    for (const auto& entry : strategies()) {
        DYNAMIC_SECTION(entry.name) {
            auto strategy = make_strategy(entry.name, s, {5, 1 << 20, nullptr});
            std::set<std::uint64_t> proposed;
            for (int round = 0; round < 100; ++round) {
                auto batch = strategy->propose(4);
                if (batch.empty()) break;
                std::vector<Trial> trials;
                for (const Config& c : batch) {
                    CHECK_FALSE(s->violation(c));
                    CHECK(proposed.insert(c.hash()).second);
                    trials.push_back({c, true, 1.0 + double(c.get_int("a"))});
                }
                strategy->observe(trials);
            }
            CHECK(proposed.size() == 60);
        }
    }
}

TEST_CASE("annealing starts at the default and improves on it", "[search]") {
    auto seen = drive("annealing", 5, 20);
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.front() == space()->default_config());
    double best = 1e9;
    for (const auto& c : seen) best = std::min(best, cost(c));
    CHECK(best < cost(space()->default_config()));
}

TEST_CASE("a space's starts: the default first, added starts after, invalid ones refused", "[search]") {
    auto s = std::make_shared<Space>(*space());
    Config far = s->default_config();
    far.set("a", std::int64_t{16}).set("b", std::int64_t{16}).set("c", std::string("z"));
    s->add_start(far);
    s->add_start(s->default_config());  // the default is listed once
    const auto starts = s->starts();
    REQUIRE(starts.size() == 2);
    CHECK(starts[0] == s->default_config());
    CHECK(starts[1] == far);
    Config bad = far;
    bad.set("a", std::int64_t{16}).set("b", std::int64_t{2});
    CHECK_THROWS_WITH(s->add_start(bad), Catch::Contains("a_le_b"));

    // Annealing measures every start before it walks: the far start is in the first batch.
    auto strategy = make_strategy("annealing", s, {1, 4096, nullptr});
    const auto first = strategy->propose(4);
    REQUIRE(first.size() == 4);
    CHECK(first[0] == s->default_config());
    CHECK(first[1] == far);
}

TEST_CASE("an unknown strategy name lists the known ones", "[search]") {
    CHECK_THROWS_WITH(make_strategy("genetic", space(), {}), Catch::Contains("annealing") && Catch::Contains("genetic"));
}
