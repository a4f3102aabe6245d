// cpu.attention.fused against cpu.attention.unfused (OpenBLAS sgemm for Q K^T and P V, the
// score matrix materialised) in one binary, all cores, GQA heads 8/2, batch 1:
//   prefill/seq:S/hd:D/causal:C   fused_best (best of a small q_tile x k_tile sweep on the
//                                 default GEMM micro-kernel inner loops, measured once each
//                                 before timing), fused_bf16 (the same sweep on the first bf16
//                                 inner kernel, AMX where present, under the bf16 accuracy
//                                 budget; only on CPUs with AVX512-BF16; prefill_bf16kv_bf16: the
//                                 same on bf16 Q, K, V), fused_dot (the register
//                                 dot-product inner loops, default tiles) and unfused; seq 512
//                                 and 2048 by default, 4096 and 8192 with --long (both head
//                                 dims, both masks)
//   decode/heads:H-KV/q:Q/kv:N    fused with split_kv=1 vs the best split_kv, each at its best
//                                 k_tile of 128, 256, 512 (GQA 32/8 and MQA 8/1, q_len 1 and
//                                 16; kv 8192 by default, 4096..32768 with --long),
//                                 decode_default (the template's default_config, what an
//                                 untuned Dispatcher runs), decode_bf16kv_best (the best split
//                                 on a bf16 KV cache: Q, K, V in bf16, read in place) and
//                                 decode_paged_best / decode_paged_bf16kv_best (q 1: the
//                                 same steps on a paged cache, pages of 16 keys in shuffled
//                                 order, as a serving engine's block table leaves them),
//                                 decode_paged_key_major / decode_paged_bf16kv_key_major /
//                                 decode_key_major (loop_order=key_major: a task walks the keys
//                                 once for every KV head, so a page is read whole; best split
//                                 and k_tile of 32..512), decode_paged_in_order_best (the pages
//                                 in pool order: runs of rows merge across them) and
//                                 decode_read_roof: a plain read
//                                 of as many bytes as the step's K and V by as many threads, the
//                                 bandwidth a decode step cannot beat (counter KV_GB/s on all)
//   backward/seq:4096/hd:128      cpu.attention.backward mode=store vs mode=recompute (q_block
//                                 256), heads 2/1, causal: time and workspace_MiB
// Counter GFLOP/s (visible query-key pairs only); ratio tables at the end.
// Usage: bench_attention [--long] [Google Benchmark flags, e.g. --benchmark_filter=decode]
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "tune/openblas_env.hpp"
#include "tune/templates/cpu_attention.hpp"
#include "tune/thread_pool.hpp"

using namespace tune;
using bench::host;

namespace {

const Template& fused() {
    static const auto t = make_cpu_attention_fused_template(host());
    return *t;
}
const Template& backward() {
    static const auto t = make_cpu_attention_backward_template(host());
    return *t;
}
const Template& unfused() {
    static const auto t = make_cpu_attention_unfused_template(host());
    return *t;
}

struct AttentionOperands {
    std::vector<float> q, k, v, o, lse, dout, dq, dk, dv;
    std::vector<std::uint16_t> q16, k16, v16;  // a bf16 problem's Q, K and V
    std::vector<std::int32_t> table;            // a paged cache's block table
    std::vector<const void*> in;
    std::vector<void*> out;
    // A paged cache's pages are shuffled, or (in_order) laid out in pool order.
    explicit AttentionOperands(const Problem& p, bool in_order = false) {
        const AttentionDims a = attention_dims(p);
        std::mt19937 rng(1);
        std::uniform_real_distribution<float> dist(-1, 1);
        q.resize(std::size_t(a.batch * a.heads * a.q_len * a.head_dim));
        k.resize(std::size_t(a.batch * a.kv_heads * a.kv_len * a.head_dim));
        v.resize(k.size());
        o.resize(q.size());
        lse.resize(std::size_t(a.batch * a.heads * a.q_len));
        if (a.page > 0) {  // K and V as page pools, the block table a shuffle of them
            k.resize(std::size_t(a.page_pool_rows() * a.head_dim));
            v.resize(k.size());
            table.resize(std::size_t(a.batch * a.pages_per_sequence()));
            for (std::size_t i = 0; i < table.size(); ++i) table[i] = std::int32_t(i);
            if (!in_order) std::shuffle(table.begin(), table.end(), rng);
        }
        for (auto* x : {&q, &k, &v})
            for (auto& e : *x) e = dist(rng);
        in = {q.data(), k.data(), v.data()};
        out = {o.data(), lse.data()};
        if (p.dtype == DType::bf16) {
            for (auto [from, to] : {std::pair{&q, &q16}, std::pair{&k, &k16}, std::pair{&v, &v16}}) {
                to->resize(from->size());
                for (std::size_t i = 0; i < from->size(); ++i) (*to)[i] = to_bf16((*from)[i]).bits;
            }
            in = {q16.data(), k16.data(), v16.data()};
        }
        if (a.page > 0) in.push_back(table.data());
        if (!a.backward) return;
        // Backward: the forward's O and LSE (from the fused kernel), a random dO; gradients out.
        Problem forward = p;
        forward.set_dim("backward", 0);
        fused().instantiate(forward, fused().space(forward)->default_config())->run(args());
        dout.resize(q.size());
        for (auto& e : dout) e = dist(rng);
        dq.resize(q.size());
        dk.resize(k.size());
        dv.resize(v.size());
        in = {q.data(), k.data(), v.data(), o.data(), lse.data(), dout.data()};
        out = {dq.data(), dk.data(), dv.data()};
    }
    OpArgs args() { return {in, out}; }
};

// The sweeps behind fused_best (and decode's no-split row): prefill q_tile >= 16 x k_tile
// 64..256 (the middle of the tile ranges only, to keep the default run short; the tuner
// searches all); decode k_tile 128..512 x the given split_kv values, so that a split and no
// split are each compared at their best key tile.
std::vector<Config> prefill_sweep(const Problem& p, const Config& base) {
    std::vector<Config> sweep;
    for (const auto& value : fused().space(p)->knob("q_tile")->values) {
        if (std::get<std::int64_t>(value) < 16) continue;
        for (std::int64_t k_tile : {64, 128, 256}) {
            Config c = base;
            sweep.push_back(c.set("q_tile", value).set("k_tile", k_tile));
        }
    }
    return sweep;
}

std::vector<Config> decode_sweep(const Problem& p, const Config& base, bool split,
                                 std::initializer_list<std::int64_t> k_tiles = {128, 256, 512}) {
    std::vector<Config> sweep;
    for (const auto& value : fused().space(p)->knob("split_kv")->values) {
        if (!split && std::get<std::int64_t>(value) != 1) continue;
        for (std::int64_t k_tile : k_tiles) {
            Config c = base;
            sweep.push_back(c.set("split_kv", value).set("k_tile", k_tile));
        }
    }
    return sweep;
}

// The fastest of `sweep`. A decode step takes milliseconds: the fastest of 7 calls per config
// keeps one call slowed by other work from choosing. Prefill calls are long enough to time once.
Config best_of(const Problem& p, const std::vector<Config>& sweep, AttentionOperands& o, bool decode) {
    const int reps = decode ? 7 : 1;
    Config best;
    double best_s = 1e30;
    for (const Config& c : sweep) {
        const double t = bench::seconds_of(*fused().instantiate(p, c), o, reps);
        if (t < best_s) best_s = t, best = c;
    }
    return best;
}

enum class Variant {
    fused_best,
    fused_bf16,
    fused_dot,
    fused_no_split,
    fused_key_major,  // loop_order=key_major, best split_kv and k_tile (32..512)
    fused_best_pages_in_order,  // fused_best on a paged cache whose pages lie in pool order
    fused_default,  // Template::default_config(p): what an untuned Dispatcher serves
    unfused,
    backward_store,
    backward_recompute
};

// p with the accuracy budget of bf16 compute (what --allow-bf16 sets).
Problem admitting_bf16(Problem p) {
    p.tolerance = bf16_compute_tolerance(p);
    return p;
}

// The first bf16 inner kernel the fused template offers for p under the bf16 budget (AMX
// first where present); empty on CPUs without one.
std::string bf16_inner(const Problem& p) {
    for (const auto& v : fused().space(admitting_bf16(p))->knob("inner")->values) {
        const auto& label = std::get<std::string>(v);
        if (label.rfind("amx_", 0) == 0 || label.rfind("avx512bf16_", 0) == 0) return label;
    }
    return {};
}

// K and V bytes of one step: what a decode step must read at least once.
double kv_bytes(const Problem& p) {
    const AttentionDims a = attention_dims(p);
    return 2.0 * double(a.batch * a.kv_heads * a.kv_len * a.head_dim) * (p.dtype == DType::bf16 ? 2 : sizeof(float));
}

void bench(benchmark::State& state, Problem p, Variant v) {
    AttentionOperands o(p, v == Variant::fused_best_pages_in_order);
    Config c;
    const bool decode = fused().space(p)->knob("split_kv") != nullptr;
    if (v == Variant::backward_store || v == Variant::backward_recompute) {
        c = backward().space(p)->default_config();
        c.set("mode", std::string(v == Variant::backward_store ? "store" : "recompute"));
        if (v == Variant::backward_recompute) c.set("q_block", std::int64_t{256});
    } else if (v == Variant::unfused) {
        c = unfused().space(p)->default_config();
    } else if (v == Variant::fused_dot) {
        c = fused().space(p)->default_config();
        c.set("inner", std::string("dot"));
    } else if (v == Variant::fused_default) {
        c = fused().default_config(p);
    } else if (v == Variant::fused_key_major) {
        Config base = fused().space(p)->default_config();
        base.set("loop_order", std::string("key_major"));
        c = best_of(p, decode_sweep(p, base, true, {32, 64, 128, 256, 512}), o, true);
    } else if (v == Variant::fused_no_split) {
        c = best_of(p, decode_sweep(p, fused().space(p)->default_config(), false), o, true);
    } else if (v == Variant::fused_bf16) {
        p = admitting_bf16(p);
        c = fused().space(p)->default_config();
        c = best_of(p, prefill_sweep(p, c.set("inner", bf16_inner(p))), o, false);
    } else {
        const Config base = fused().space(p)->default_config();
        c = best_of(p, decode ? decode_sweep(p, base, true) : prefill_sweep(p, base), o, decode);
    }
    const Template& t = v == Variant::unfused                                         ? unfused()
                        : v == Variant::backward_store || v == Variant::backward_recompute ? backward()
                                                                                          : fused();
    auto kernel = t.instantiate(p, c);
    for (auto _ : state) kernel->run(o.args());
    bench::settle(t);
    bench::set_gflops(state, p);
    state.counters["workspace_MiB"] = double(kernel->workspace_bytes()) / (1 << 20);
    if (decode)
        state.counters["KV_GB/s"] = benchmark::Counter(kv_bytes(p) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(c.text());
}

// The read roof of a decode step: its K and V bytes in one buffer, each thread summing its
// contiguous share once per call (a sum, so the loads cannot be dropped), with the decode
// kernel's default thread count.
void read_roof(benchmark::State& state, Problem p) {
    const int threads = int(fused().space(p)->default_config().get_int("threads"));
    std::vector<float> data(std::size_t(kv_bytes(p) / sizeof(float)), 1.0f);
    ThreadPool pool(threads);
    std::vector<float> sums(std::size_t(threads), 0.0f);
    for (auto _ : state) {
        pool.parallel_for(threads, [&](int t) {
            const std::size_t n = data.size(), lo = n * std::size_t(t) / std::size_t(threads),
                              hi = n * std::size_t(t + 1) / std::size_t(threads);
            float acc[16] = {};  // independent lanes: the loop vectorises without reassociation
            std::size_t i = lo;
            for (; i + 16 <= hi; i += 16)
                for (int j = 0; j < 16; ++j) acc[j] += data[i + std::size_t(j)];
            float sum = 0;
            for (; i < hi; ++i) sum += data[i];
            for (float a : acc) sum += a;
            sums[std::size_t(t)] = sum;
        });
        benchmark::DoNotOptimize(sums.data());
        benchmark::ClobberMemory();
    }
    state.counters["KV_GB/s"] = benchmark::Counter(kv_bytes(p) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel("threads=" + std::to_string(threads));
}

void add(const std::string& name, const Problem& p, Variant v) {
    benchmark::RegisterBenchmark(name.c_str(), bench, p, v)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
}

}  // namespace

int main(int argc, char** argv) {
    use_best_openblas_core(argv);
    bool long_run = false;
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--long") == 0) {
            long_run = true;
            for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
            --argc;
            break;
        }
    std::vector<std::int64_t> lengths{512, 2048};
    if (long_run) lengths.insert(lengths.end(), {4096, 8192});
    for (std::int64_t seq : lengths)
        for (std::int64_t hd : {64, 128})
            for (int causal : {0, 1}) {
                const Problem p = make_attention(1, 8, 2, seq, seq, hd, causal != 0);
                const std::string key = "/seq:" + std::to_string(seq) + "/hd:" + std::to_string(hd) +
                                        "/causal:" + std::to_string(causal);
                add("prefill_fused_best" + key, p, Variant::fused_best);
                if (!bf16_inner(p).empty()) {
                    add("prefill_fused_bf16" + key, p, Variant::fused_bf16);
                    Problem cache = p;  // the same on a bf16 KV cache: Q, K, V stored as bf16
                    cache.dtype = DType::bf16;
                    add("prefill_bf16kv_bf16" + key, cache, Variant::fused_bf16);
                }
                add("prefill_fused_dot" + key, p, Variant::fused_dot);
                add("prefill_unfused" + key, p, Variant::unfused);
            }
    // GQA 32/8 has 8 independent KV heads for 2 threads; MQA 8/1 has one, so only a split can
    // spread a decode step over the cores.
    std::vector<std::int64_t> kv_lengths{8192};
    if (long_run) kv_lengths = {4096, 8192, 16384, 32768};
    for (std::int64_t kv : kv_lengths)
        for (std::int64_t q : {1, 16})
            for (auto [heads, kv_heads] : {std::pair{32, 8}, std::pair{8, 1}}) {
                const Problem decode = make_attention(1, heads, kv_heads, q, kv, 128, true);
                const std::string key = "/heads:" + std::to_string(heads) + "-" + std::to_string(kv_heads) +
                                        "/q:" + std::to_string(q) + "/kv:" + std::to_string(kv) + "/hd:128";
                add("decode_fused_no_split" + key, decode, Variant::fused_no_split);
                add("decode_fused_best" + key, decode, Variant::fused_best);
                add("decode_default" + key, decode, Variant::fused_default);
                Problem bf16_kv = decode;  // the same step on a bf16 KV cache (Q, K, V in bf16)
                bf16_kv.dtype = DType::bf16;
                add("decode_bf16kv_best" + key, bf16_kv, Variant::fused_best);
                if (q == 1) {  // the same steps on a paged cache: pages of 16 keys in shuffled order
                    Problem paged = decode, paged_bf16 = bf16_kv;
                    paged.set_dim("page", 16);
                    paged_bf16.set_dim("page", 16);
                    add("decode_paged_best" + key, paged, Variant::fused_best);
                    add("decode_paged_bf16kv_best" + key, paged_bf16, Variant::fused_best);
                    add("decode_paged_key_major" + key, paged, Variant::fused_key_major);
                    add("decode_paged_bf16kv_key_major" + key, paged_bf16, Variant::fused_key_major);
                    add("decode_key_major" + key, decode, Variant::fused_key_major);
                    add("decode_paged_in_order_best" + key, paged, Variant::fused_best_pages_in_order);
                }
                benchmark::RegisterBenchmark(("decode_read_roof" + key).c_str(), read_roof, decode)
                    ->Unit(benchmark::kMillisecond)
                    ->UseRealTime()
                    ->MinTime(0.5);
            }
    Problem grad = make_attention(1, 2, 1, 4096, 4096, 128, true);
    grad.set_dim("backward", 1);
    add("backward_store/seq:4096/hd:128", grad, Variant::backward_store);
    add("backward_recompute/seq:4096/hd:128", grad, Variant::backward_recompute);

    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    bench::GflopsReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);

    auto ratios = [&](const char* title, const std::string& slow, const std::string& fast) {
        std::printf("\n%s\n%-34s %12s %12s %8s\n", title, "shape", (slow + " GF/s").c_str(), (fast + " GF/s").c_str(),
                    "speedup");
        for (const auto& [name, counters] : reporter.counters) {
            if (name.rfind(slow + "/", 0) != 0) continue;
            const std::string key = name.substr(slow.size());
            const double base = reporter.get(name), faster = reporter.get(fast + key);
            if (base <= 0 || faster <= 0) continue;  // no GFLOP/s on one side
            std::printf("%-34s %12.1f %12.1f %7.2fx\n", key.c_str() + 1, base, faster, faster / base);
        }
    };
    ratios("prefill: fused (best tiles) vs unfused (OpenBLAS), heads 8/2, all cores", "prefill_unfused",
           "prefill_fused_best");
    ratios("prefill: fused bf16 inner loops (best tiles, bf16 accuracy budget) vs unfused f32 (OpenBLAS)",
           "prefill_unfused", "prefill_fused_bf16");
    ratios("prefill: fused bf16 vs fused f32 inner loops (best tiles each)", "prefill_fused_best", "prefill_fused_bf16");
    ratios("prefill: bf16 inner loops on a bf16 KV cache vs on f32 Q/K/V (rounded once per call)", "prefill_fused_bf16",
           "prefill_bf16kv_bf16");
    ratios("prefill: fused GEMM micro-kernel inner loops (best tiles) vs dot-product inner loops (default tiles)",
           "prefill_fused_dot", "prefill_fused_best");
    ratios("decode: fused best split_kv vs split_kv=1, all cores", "decode_fused_no_split",
           "decode_fused_best");
    ratios("decode: bf16 K/V vs f32 K/V (fused, best split_kv and k_tile each), all cores", "decode_fused_best",
           "decode_bf16kv_best");
    ratios("decode: a paged KV cache (pages of 16 keys, shuffled) vs a contiguous one (best split_kv and k_tile each)",
           "decode_fused_best", "decode_paged_best");
    ratios("decode: the same on a bf16 KV cache", "decode_bf16kv_best", "decode_paged_bf16kv_best");
    ratios("decode: a paged cache with its pages in pool order (runs merge across pages) vs a contiguous one",
           "decode_fused_best", "decode_paged_in_order_best");
    ratios("decode, paged cache: key-major vs head-major loop order (best split_kv and k_tile each)",
           "decode_paged_best", "decode_paged_key_major");
    ratios("decode, paged bf16 cache: key-major vs head-major loop order", "decode_paged_bf16kv_best",
           "decode_paged_bf16kv_key_major");
    ratios("decode, contiguous cache: key-major vs head-major loop order", "decode_fused_best", "decode_key_major");
    ratios("decode: a paged cache read key-major vs a contiguous one read head-major (best of each)",
           "decode_fused_best", "decode_paged_key_major");
    ratios("backward: recompute (q_block 256) vs store, heads 2/1, causal, all cores", "backward_store",
           "backward_recompute");
    // The share of the read roof each decode schedule reaches: split-KV can only gain where no
    // split leaves bandwidth unused.
    std::printf("\ndecode: K and V read rate against a plain read of the same bytes, all cores\n%-34s %10s %10s %10s %9s %9s\n",
                "shape", "roof GB/s", "no split", "best", "no/roof", "best/roof");
    for (const auto& [name, counters] : reporter.counters) {
        const std::string roof = "decode_read_roof";
        if (name.rfind(roof + "/", 0) != 0) continue;
        const std::string key = name.substr(roof.size());
        const double r = reporter.get(name, "KV_GB/s"), no = reporter.get("decode_fused_no_split" + key, "KV_GB/s"),
                     best = reporter.get("decode_fused_best" + key, "KV_GB/s");
        if (r <= 0 || no <= 0 || best <= 0) continue;
        std::printf("%-34s %10.1f %10.1f %10.1f %8.0f%% %8.0f%%\n", key.c_str() + 1, r, no, best, 100 * no / r,
                    100 * best / r);
    }
    benchmark::Shutdown();
    return 0;
}
