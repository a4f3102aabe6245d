// Problem keys, configs, spaces and constraints.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <limits>
#include <set>

#include "tune/error.hpp"
#include "tune/problem.hpp"
#include "tune/space.hpp"

using namespace tune;

TEST_CASE("a shape key names every dim and round-trips", "[core]") {
    Problem p = make_gemm(512, 4096, 14336, DType::f32, false, true);
    CHECK(shape_key(p) == "gemm f32 batch=1 m=512 n=4096 k=14336 trans_a=0 trans_b=1 bias=0 act=none residual=0");
    CHECK(parse_shape_key(shape_key(p)) == p);
    nlohmann::json j = p;
    CHECK(j.get<Problem>() == p);
    CHECK(ProblemHash{}(p) == ProblemHash{}(parse_shape_key(shape_key(p))));
    CHECK(ProblemHash{}(p) != ProblemHash{}(make_gemm(512, 4096, 14336)));
}

TEST_CASE("a paged KV cache is an attention dim keyed only when set, stored keys without it still parse", "[core]") {
    const Problem plain = make_attention(2, 32, 8, 1, 4096, 128, true, 0, DType::bf16);
    const std::string old_key = shape_key(plain);
    CHECK(old_key == "attention bf16 batch=2 heads=32 kv_heads=8 q_len=1 kv_len=4096 head_dim=128 causal=1 window=0 backward=0");
    CHECK(parse_shape_key(old_key) == plain);
    Problem paged = plain;
    paged.set_dim("page", 16);
    CHECK(shape_key(paged) == old_key + " page=16");
    CHECK(parse_shape_key(shape_key(paged)) == paged);
    CHECK(attention_dims(paged).page == 16);
    CHECK(attention_dims(paged).pages_per_sequence() == 256);
    Problem scaled = with_scale(paged, 0.5);
    scaled.tolerance = 0.01;
    CHECK(parse_shape_key(shape_key(scaled)) == scaled);
    CHECK(parse_shape_key(shape_key(with_scale(plain, 0.5))) == with_scale(plain, 0.5));
    nlohmann::json j = paged;
    CHECK(j.get<Problem>() == paged);
    CHECK(nlohmann::json(plain).get<Problem>() == plain);
    CHECK(shape_distance(plain, paged) == std::numeric_limits<double>::infinity());  // a layout, never a neighbour

    CHECK_THROWS_WITH(parse_shape_key(old_key + " page=0"), Catch::Contains("leaving it out"));
    CHECK_THROWS_WITH(parse_shape_key(old_key + " page=16 page=16"), Catch::Contains("dims"));
    Problem backward = paged;
    backward.set_dim("backward", 1);
    CHECK_THROWS_WITH(validate(backward), Catch::Contains("forward only"));
    Problem negative = plain;
    negative.set_dim("page", -4);
    CHECK_THROWS_WITH(validate(negative), Catch::Contains("'page'"));
}

TEST_CASE("invalid problems are rejected with the dim named", "[core]") {
    CHECK_THROWS_WITH(validate(make_gemm(0, 4, 4)), Catch::Contains("'m'") && Catch::Contains(">= 1"));
    CHECK_THROWS_WITH(validate(make_gemm(4, -3, 4)), Catch::Contains("'n'"));
    Problem flag = make_gemm(4, 4, 4);
    flag.set_dim("trans_a", 2);
    CHECK_THROWS_WITH(validate(flag), Catch::Contains("trans_a"));
    CHECK_THROWS_WITH(validate(make_gemm(std::int64_t{1} << 40, std::int64_t{1} << 40, 4)), Catch::Contains("overflows"));
    CHECK_THROWS_AS(parse_shape_key("gemm f32 m=1"), Error);
    CHECK_THROWS_WITH(parse_shape_key("gemm f99 batch=1 m=1 n=1 k=1 trans_a=0 trans_b=0"), Catch::Contains("f99"));
    CHECK_THROWS_AS(parse_shape_key("gemm f32 batch=1 m=x n=1 k=1 trans_a=0 trans_b=0"), Error);
    CHECK_THROWS_WITH(nlohmann::json::parse(R"({"op":"gemm","dtype":"f32","m":4,"n":4,"k":"4"})").get<Problem>(),
                      Catch::Contains("'k'"));
    CHECK_THROWS_WITH(nlohmann::json::parse(R"({"op":"gemm","dtype":"f32","m":4,"n":4,"k":4,"q":1})").get<Problem>(),
                      Catch::Contains("unknown field 'q'"));
}

TEST_CASE("shape distance is a log-size distance and infinite across flags", "[core]") {
    Problem a = make_gemm(256, 1024, 1024), b = make_gemm(512, 1024, 1024), c = make_gemm(256, 1024, 1024, DType::f32, true);
    CHECK(shape_distance(a, a) == 0);
    CHECK(shape_distance(a, b) == Approx(1.0));
    CHECK(std::isinf(shape_distance(a, c)));
}

TEST_CASE("config text, JSON and hash are canonical", "[core]") {
    Config c{{"nc", std::int64_t{4096}}, {"ukernel", std::string("avx512_8x32")}, {"kc", std::int64_t{256}}};
    CHECK(c.text() == "kc=256 nc=4096 ukernel=avx512_8x32");
    CHECK(Config::parse(c.text()) == c);
    nlohmann::json j = c;
    CHECK(j.dump() == R"({"kc":256,"nc":4096,"ukernel":"avx512_8x32"})");
    CHECK(j.get<Config>() == c);
    Config same{{"kc", std::int64_t{256}}, {"ukernel", std::string("avx512_8x32")}, {"nc", std::int64_t{4096}}};
    CHECK(same.hash() == c.hash());
    CHECK(c.hash_hex().size() == 16);
    CHECK(Config{{"kc", std::int64_t{512}}}.hash() != Config{{"kc", std::int64_t{256}}}.hash());
}

TEST_CASE("malformed configs are rejected with the knob named", "[core]") {
    CHECK_THROWS_WITH(nlohmann::json::parse(R"({"kc":1.5})").get<Config>(), Catch::Contains("'kc'"));
    CHECK_THROWS_WITH(nlohmann::json::parse(R"({"kc":[1]})").get<Config>(), Catch::Contains("'kc'"));
    CHECK_THROWS_AS(nlohmann::json::parse(R"([1,2])").get<Config>(), Error);
    CHECK_THROWS_AS(nlohmann::json::parse(R"({"Bad Name":1})").get<Config>(), Error);
    // A label that reads as a number would collide with the integer in text and hash.
    CHECK_THROWS_WITH(nlohmann::json::parse(R"({"kmode":"4"})").get<Config>(), Catch::Contains("not a number"));
    CHECK_THROWS_AS(nlohmann::json::parse(R"({"kmode":"a b"})").get<Config>(), Error);
    CHECK_THROWS_AS(Config::parse("kc"), Error);
    CHECK_THROWS_AS(Config::parse("kc=1 kc=2"), Error);
    CHECK_THROWS_AS(Config{}.get_int("missing"), Error);
}

namespace {
Space small_space() {
    Space s;
    s.add(Knob::pow2("tile", 1, 8, 2));
    s.add(Knob::ints("threads", {1, 2}, 1));
    s.add(Knob::categorical("order", {"mn", "nm"}, "mn"));
    s.add(Knob::boolean("pack", true));
    s.require("tile_8_needs_pack", [](const Config& c) { return c.get_int("tile") != 8 || c.get_int("pack") == 1; });
    return s;
}
}  // namespace

TEST_CASE("a space enumerates and counts exactly the configs its constraints allow", "[core]") {
    Space s = small_space();
    CHECK(s.raw_size() == 4 * 2 * 2 * 2);
    // tile=8 with pack=0 is excluded: 2 threads x 2 orders.
    CHECK(s.count() == 32 - 4);
    auto all = s.enumerate_all();
    REQUIRE(all.size() == 28);
    std::set<std::uint64_t> hashes;
    for (const auto& c : all) {
        CHECK_FALSE(s.violation(c));
        hashes.insert(c.hash());
    }
    CHECK(hashes.size() == all.size());
    CHECK(s.count(10) == 10);
}

TEST_CASE("a space names what is wrong with a config", "[core]") {
    Space s = small_space();
    Config c = s.default_config();
    CHECK_FALSE(s.violation(c));
    Config bad = c;
    bad.set("tile", std::int64_t{3});
    CHECK_THAT(*s.violation(bad), Catch::Contains("'tile'") && Catch::Contains("3"));
    bad = c;
    bad.set("tile", std::int64_t{8}).set("pack", std::int64_t{0});
    CHECK_THAT(*s.violation(bad), Catch::Contains("tile_8_needs_pack"));
    bad = c;
    bad.set("bogus", std::int64_t{1});
    CHECK_THAT(*s.violation(bad), Catch::Contains("unknown knob 'bogus'"));
    Config missing{{"tile", std::int64_t{2}}};
    CHECK_THAT(*s.violation(missing), Catch::Contains("missing knob"));
    CHECK_THROWS_AS(s.validate(bad), Error);
}

TEST_CASE("sampling is seeded and neighbours differ in one knob", "[core]") {
    Space s = small_space();
    std::mt19937_64 r1(7), r2(7);
    for (int i = 0; i < 20; ++i) {
        auto a = s.sample(r1), b = s.sample(r2);
        REQUIRE(a);
        CHECK(*a == *b);
        CHECK_FALSE(s.violation(*a));
    }
    Config c = s.default_config();
    auto ns = s.neighbours(c);
    CHECK_FALSE(ns.empty());
    for (const auto& n : ns) {
        CHECK_FALSE(s.violation(n));
        int differing = 0;
        for (std::size_t i = 0; i < n.values().size(); ++i) differing += n.values()[i] != c.values()[i];
        CHECK(differing == 1);
    }
    auto features = s.encode(c);
    CHECK(features.size() == 1 + 1 + 2 + 1);  // order one-hot has 2 entries
}

TEST_CASE("labelled dims print and parse by name", "[core]") {
    Problem p = with_epilogue(make_gemm(4, 8, 16), true, Activation::gelu, false);
    CHECK(shape_key(p) == "gemm f32 batch=1 m=4 n=8 k=16 trans_a=0 trans_b=0 bias=1 act=gelu residual=0");
    CHECK(parse_shape_key(shape_key(p)) == p);
    nlohmann::json j = p;
    CHECK(j["act"] == "gelu");
    CHECK(j.get<Problem>() == p);
    CHECK_THROWS_WITH(parse_shape_key("gemm f32 batch=1 m=4 n=8 k=16 trans_a=0 trans_b=0 bias=1 act=relu residual=0"),
                      Catch::Contains("act") && Catch::Contains("gelu"));
    CHECK(gemm_dims(p).has_epilogue());
    CHECK_FALSE(gemm_dims(make_gemm(4, 8, 16)).has_epilogue());
    Problem s = make_swiglu(16, 96, 64);
    CHECK(shape_key(s) == "swiglu f32 m=16 n=96 k=64");
    CHECK(parse_shape_key(shape_key(s)) == s);
    CHECK(flop_count(s) == 4.0 * 16 * 96 * 64);
}

TEST_CASE("bf16 compute needs an explicit tolerance", "[core]") {
    Problem p = make_gemm(64, 64, 1024);
    CHECK(default_tolerance(p) < 0x1p-8 / 10);
    CHECK(bf16_compute_tolerance(p) > 2 * 0x1p-8);
    CHECK(bf16_compute_tolerance(p) < 0.01);
}

TEST_CASE("an explicit accuracy budget is part of the shape key", "[core]") {
    Problem p = make_gemm(8, 8, 8);
    p.tolerance = 0.0125;
    CHECK(shape_key(p) == "gemm f32 batch=1 m=8 n=8 k=8 trans_a=0 trans_b=0 bias=0 act=none residual=0 tol=0.0125");
    CHECK(parse_shape_key(shape_key(p)) == p);
    CHECK_THROWS_WITH(parse_shape_key(shape_key(make_gemm(8, 8, 8)) + " tol=-1"), Catch::Contains("tol"));
    // A budget past 100% accepts anything: refused wherever a problem comes from.
    CHECK_THROWS_WITH(parse_shape_key(shape_key(make_gemm(8, 8, 8)) + " tol=5"), Catch::Contains("[0, 1]"));
    p.tolerance = 1;
    CHECK_NOTHROW(validate(p));
}
