// tune model | gemm | lookup
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <unordered_map>
#include <nlohmann/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <sstream>

#include "cli.hpp"
#include "tune/backends.hpp"
#include "tune/db/sqlite_database.hpp"
#include "tune/dispatcher.hpp"
#include "tune/error.hpp"
#include "tune/model.hpp"
#include "tune/search/strategy.hpp"
#include "tune/tuner.hpp"

namespace tune::cli {
namespace {

// The token count a problem is tuned for (the table's "tokens" column): the query rows of an
// attention problem, the rows of a GEMM or SwiGLU.
std::int64_t tokens_of(const Problem& p) { return p.dim(p.op == OpKind::attention ? "q_len" : "m"); }

// "256MiB", "1GiB", "64KiB", "1.5GB", "4096" (bytes) -> bytes. Binary (KiB, K) and decimal (KB)
// suffixes; anything else names the flag and the text.
std::size_t parse_bytes(const std::string& text, const std::string& flag) {
    std::size_t used = 0;
    double value = 0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    const std::string unit = text.substr(used);
    static const std::map<std::string, double> kUnits{
        {"", 1},     {"B", 1},     {"K", 1024.0}, {"KiB", 1024.0}, {"KB", 1e3}, {"M", 1048576.0}, {"MiB", 1048576.0},
        {"MB", 1e6}, {"G", 1073741824.0}, {"GiB", 1073741824.0}, {"GB", 1e9}, {"TiB", 1099511627776.0}, {"TB", 1e12}};
    auto it = kUnits.find(unit);
    require(used > 0 && it != kUnits.end() && std::isfinite(value) && value >= 1 && value * it->second < 9e18,
            flag + ": '" + text + "' is not a size such as 256MiB, 1GiB or 65536 (bytes, >= 1)");
    return static_cast<std::size_t>(value * it->second);
}

}  // namespace

CLI::Validator finite_range(double lo, double hi) {
    // CLI::Range lets NaN through (every comparison with it is false).
    return CLI::Validator(
        [lo, hi](std::string& text) -> std::string {
            char* end = nullptr;
            const double v = std::strtod(text.c_str(), &end);
            if (text.empty() || *end != '\0' || !std::isfinite(v) || v < lo || v > hi)
                return "expected a number from " + format_fixed(lo, 0) + " to " + format_fixed(hi, 0) + ", got '" +
                       text + "'";
            return {};
        },
        "NUMBER in [" + format_fixed(lo, 0) + ", " + format_fixed(hi, 0) + "]");
}

CLI::Validator whole_number() {
    // The stream conversion of an unsigned option takes "-1" and wraps it, and saturates on overflow.
    return CLI::Validator(
        [](std::string& text) -> std::string {
            std::uint64_t v = 0;
            const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), v);
            if (text.empty() || error != std::errc() || end != text.data() + text.size())
                return "expected a whole number from 0 to 18446744073709551615, got '" + text + "'";
            return {};
        },
        "UINT64");
}

void add_tune_options(CLI::App& cmd, TuneArgs& a) {
    cmd.add_option("--db", a.db, "SQLite file to tune into (created if absent)")->capture_default_str();
    cmd.add_option("--dtype", a.dtype, "element type: f32 (bf16 and f16 come with their templates)")->capture_default_str();
    cmd.add_option("--backend", a.backend, "cpu, cuda or hip (GPU GEMM and bf16/f16 attention; in builds with the CUDA toolkit / ROCm headers)")->capture_default_str();
    cmd.add_option("--budget", a.budget, "candidates measured per problem, all templates together")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
    cmd.add_option("--time-limit", a.time_limit, "seconds per problem; 0 = no limit")
        ->capture_default_str()
        ->check(finite_range(0.0, 1e7));
    cmd.add_option("--confirm-rounds", a.confirm_rounds,
                   "re-measure the finalists (each template's fastest and the 3 fastest) this many times, in turn, "
                   "and pick by the fastest time each reached twice (within 2%: a fixed order); 0 = pick by one measurement each")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{0}, std::size_t{100}));
    cmd.add_option("--contest-rounds", a.contest_rounds,
                   "close calls (finalists within 6% of the fastest after --confirm-rounds): re-measure those, in turn, "
                   "until each has repeated its fastest time within 1%, at most this many more times")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{0}, std::size_t{100}));
    std::string names;
    for (const auto& s : strategies()) names += (names.empty() ? "" : ", ") + s.name;
    cmd.add_option("--strategy", a.strategy, "search strategy: " + names)->capture_default_str();
    cmd.add_option("--seed", a.seed, "seed for the strategy (random/exhaustive: the same candidates every run; the others also follow measured times)")
        ->capture_default_str()
        ->check(whole_number());
    cmd.add_option("--tolerance", a.tolerance,
                   "largest error accepted (max |C - C_ref| / (|A||B|)); default: exact semantics of the dtype")
        ->check(finite_range(0.0, 1.0));
    cmd.add_flag("--allow-bf16", a.allow_bf16, "accept computing f32 inputs in bf16 (f32 accumulation)");
    cmd.add_flag("--in-process", a.in_process,
                 "measure in the tuner's own process (faster; a crashing candidate then ends the run)");
    cmd.add_flag("--cold", a.flush_cache, "flush caches before each timed repetition (cold-cache timing)");
    cmd.add_flag("--mpi", a.mpi, "under mpirun: rank 0 coordinates and stores, the other ranks measure");
    cmd.add_option("--rank-timeout", a.rank_timeout, "--mpi: seconds a measuring rank may stay silent before it counts as lost")
        ->capture_default_str()
        ->check(finite_range(1.0, 1e6));
    cmd.add_flag("--mpi-share-host", a.mpi_share_host,
                 "--mpi: let ranks on one host measure at the same time (give each its own cores, e.g. mpirun "
                 "--bind-to core); by default they take turns so their timings do not disturb each other");
    cmd.add_option("--max-workspace", a.max_workspace,
                   "skip configs whose kernel needs more workspace memory, e.g. 256MiB, 1GiB, 65536 (bytes)");
    cmd.add_flag("-q,--quiet", a.quiet, "no progress lines");
}

namespace {

std::string describe(const Measurement& m) { return m.template_name + " " + m.config.text(); }

std::string ratio(const std::optional<Measurement>& best, const std::optional<Measurement>& base) {
    if (!best || !base || base->status != Status::ok) return "-";
    // By ranking_time, the time configs are compared by (a confirmed pick carries its confirmed time).
    return format_fixed(ranking_time(base->stats) / ranking_time(best->stats), 2) + "x";
}

std::optional<Measurement> find_best(const TuneResult& r, const std::string& template_name) {
    auto it = r.template_best.find(template_name);
    if (it == r.template_best.end()) return std::nullopt;
    return it->second;
}

// --scale of attention problems: kept 0 (the default, 1/sqrt(head_dim)) unless given; a given
// value must be finite and > 0.
void add_scale_option(CLI::App& cmd, double& scale) {
    cmd.add_option("--scale", scale, "attention: factor on Q K^T before the softmax (default 1/sqrt(head_dim))")
        ->check([](const std::string& text) -> std::string {
            char* end = nullptr;
            const double v = std::strtod(text.c_str(), &end);
            if (text.empty() || *end != '\0' || !std::isfinite(v) || v <= 0)
                return "--scale must be a finite number > 0, got '" + text + "'";
            return {};
        });
}

// The table's shape column: "m x n x k", or for attention "heads/kv_heads h, q x kv, d, masks".
std::string shape_text(const Problem& p) {
    if (p.op != OpKind::attention)
        return std::to_string(p.dim("m")) + " x " + std::to_string(p.dim("n")) + " x " + std::to_string(p.dim("k"));
    const AttentionDims a = attention_dims(p);
    std::string text = std::to_string(a.heads) + "/" + std::to_string(a.kv_heads) + "h " + std::to_string(a.q_len) +
                       "x" + std::to_string(a.kv_len) + " d" + std::to_string(a.head_dim);
    if (a.batch > 1) text = "b" + std::to_string(a.batch) + " " + text;
    if (a.causal) text += " causal";
    if (a.window > 0) text += " window " + std::to_string(a.window);
    if (a.backward) text += " backward";
    if (a.page > 0) text += " paged " + std::to_string(a.page);
    if (p.scale > 0) text += " scale " + format_fixed(p.scale, 4);
    return text;
}

// The template a tuned pick is compared with in the baseline column, and that column's title.
const char* baseline_template(OpKind op, Backend backend) {
    if (backend == Backend::cuda) return "cuda.gemm.cublaslt";
    if (backend == Backend::hip) return "hip.gemm.mfma";  // no vendor template on HIP yet
    return op == OpKind::attention ? "cpu.attention.unfused" : "cpu.gemm.openblas";
}
const char* baseline_title(Backend backend) {
    if (backend == Backend::cuda) return "vs cuBLASLt";
    if (backend == Backend::hip) return "vs hip.gemm.mfma";
    return "vs OpenBLAS (attention: unfused)";
}

}  // namespace

DeviceInfo backend_device(const std::string& backend_name) {
    const Backend backend = parse_backend(backend_name, "--backend");
    try {
        return detect_device(backend);
    } catch (const Error& e) {
        throw Error("--backend " + backend_name + ": " + e.what());
    }
}

StaleShapes stale_shapes(const std::string& path, const DeviceInfo& device, const TemplateRegistry& registry) {
    StaleShapes out;
    SqliteDatabase db(path);
    MeasurementFilter filter;
    filter.device_id = device.id();
    const auto rows = db.query(filter, [&](std::int64_t, const std::string&) { ++out.bad_rows; });
    // Per shape: the templates with an ok row of their current version, and those with rows of
    // another version. Templates this build does not have are neither (never called stale).
    struct Versions {
        std::set<std::string> current, older;
    };
    std::unordered_map<Problem, Versions, ProblemHash> shapes;
    std::vector<Problem> order;
    for (const Measurement& m : rows) {
        const Template* t = registry.find(m.template_name);
        if (t == nullptr) continue;
        auto [it, added] = shapes.try_emplace(m.problem);
        if (added) order.push_back(m.problem);
        if (m.template_version != t->info().version) {
            it->second.older.insert(m.template_name);
        } else if (m.status == Status::ok) {
            it->second.current.insert(m.template_name);
        }
    }
    std::sort(order.begin(), order.end(), [](const Problem& a, const Problem& b) { return shape_key(a) < shape_key(b); });
    for (const Problem& p : order) {
        const Versions& v = shapes.at(p);
        const bool needs = std::any_of(v.older.begin(), v.older.end(), [&](const std::string& t) { return !v.current.contains(t); });
        if (!needs) continue;
        out.problems.push_back({std::string(to_string(p.op)), tokens_of(p), p});
    }
    return out;
}

Backend check_tune_args(const TuneArgs& a) {
    const Backend backend = parse_backend(a.backend, "--backend");
    make_strategy(a.strategy, std::make_shared<Space>(), {});  // rejects an unknown name
    require(backend == Backend::cpu || !a.mpi, "--mpi: only with --backend cpu for now");
    if (!a.max_workspace.empty()) parse_bytes(a.max_workspace, "--max-workspace");
    require_store_path(a.db, "--db");
    return backend;
}

void run_tuning(const std::vector<NamedProblem>& problems, const TuneArgs& a, const std::string& command,
                const std::string& intro, const AfterTuning& after) {
    // Every argument is checked before the store is opened: a failed command adds no run to it.
    const Backend backend = check_tune_args(a);
    const DeviceInfo device = backend_device(a.backend);
    TemplateRegistry registry = builtin_registry(device);
    std::vector<Problem> budgeted;
    for (const auto& np : problems) {
        budgeted.push_back(a.with_budget(np.problem));
        validate(budgeted.back());
        require(!registry.for_problem(budgeted.back(), backend).empty(),
                "no template can compute '" + shape_key(budgeted.back()) + "' on backend " +
                    std::string(to_string(backend)) + " (check --dtype)");
    }
    MeasureOptions mo;
    mo.flush_cache = a.flush_cache;
    std::shared_ptr<Accelerator> accelerator = make_accelerator(device);
    // CPU candidates run in a worker process, so a crash costs only that candidate; a GPU
    // context does not survive fork(), so GPU candidates run here.
    mo.isolate = !a.in_process && !accelerator;
    Measurer measurer = accelerator ? Measurer(device, mo, accelerator) : Measurer(device, mo);
    std::unique_ptr<MpiRun> mpi;  // before the store: it outlives it and stops the ranks last
    if (a.mpi) {
        mpi = start_mpi(device, registry, measurer, a.rank_timeout, a.mpi_share_host);
        if (!mpi->coordinator()) return;  // a measuring rank: it served rank 0 until the run ended
    }
    SqliteDatabase db(a.db);
    // GPU: eight candidates in flight, so NVRTC compiles ahead of the device.
    LocalExecutor local(measurer, accelerator ? 8 : 1);
    std::int64_t run_id = db.start_run({0, command, a.strategy, a.seed, "", ""}, device);
    Tuner tuner(db, registry, mpi ? *mpi->coordinator() : static_cast<Executor&>(local), run_id);

    std::fprintf(stderr, "%sdevice: %s\nstore:  %s (run %lld)\n", intro.c_str(), device.summary().c_str(),
                 a.db.c_str(), static_cast<long long>(run_id));
    if (mpi) std::fprintf(stderr, "mpi:    %s\n", mpi->summary().c_str());
    const bool tty = isatty(STDERR_FILENO);
    auto last_line = std::chrono::steady_clock::now();
    TuneOptions opt;
    opt.budget = a.budget;
    opt.time_limit_s = a.time_limit;
    opt.confirm_rounds = a.confirm_rounds;
    opt.contest_rounds = a.contest_rounds;
    opt.strategy = a.strategy;
    opt.seed = a.seed;
    opt.backend = backend;
    if (!a.max_workspace.empty()) opt.max_workspace_bytes = parse_bytes(a.max_workspace, "--max-workspace");
    opt.on_progress = [&](const TuneProgress& p) {
        if (a.quiet) return;
        auto now = std::chrono::steady_clock::now();
        bool last = p.finished;
        if (!tty && !last && now - last_line < std::chrono::seconds(5)) return;
        last_line = now;
        std::string best = p.best ? format_seconds(p.best->stats.median_s) + " (" +
                                        format_fixed(p.best->gflops(), 1) + " GFLOP/s)"
                                  : "-";
        std::fprintf(stderr, "%s[%zu/%zu] %s  %zu/%zu candidates (%zu reused, %zu failed)  best %s  %.0fs elapsed, ~%.0fs left%s",
                     tty ? "\r\033[K" : "", p.problem_index + 1, p.problem_count, shape_key(*p.problem).c_str(), p.done,
                     p.budget, p.reused, p.failed, best.c_str(), p.elapsed_s, p.remaining_s, tty ? "" : "\n");
        if (tty && p.finished) std::fprintf(stderr, "\n");
    };

    Table table({"problem", "tokens", "shape", "best config", "median", "GFLOP/s", "vs default",
                 baseline_title(backend), "vs best library"});
    const auto start = std::chrono::steady_clock::now();
    // Problems with their own budget (tune model's attention) are tuned as a group of their own.
    std::vector<TuneResult> results;
    for (std::size_t i = 0, j = 0; i < problems.size(); i = j) {
        while (j < problems.size() && problems[j].budget == problems[i].budget) ++j;
        TuneOptions group = opt;
        if (problems[i].budget > 0) group.budget = std::min(opt.budget, problems[i].budget);
        auto part = tuner.tune_all(std::span<const Problem>(budgeted).subspan(i, j - i), group);
        results.insert(results.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
    }
    for (std::size_t i = 0; i < problems.size(); ++i) {
        const TuneResult& r = results[i];
        const Problem& p = problems[i].problem;
        const std::string dims = shape_text(p);
        if (!r.best) {
            table.add({problems[i].name, std::to_string(problems[i].tokens), dims, "(no correct candidate)", "-", "-", "-", "-", "-"});
            continue;
        }
        table.add({problems[i].name, std::to_string(problems[i].tokens), dims, describe(*r.best),
                   format_seconds(r.best->stats.median_s), format_fixed(r.best->gflops(), 1),
                   ratio(r.best, r.default_config), ratio(r.best, find_best(r, baseline_template(p.op, backend))),
                   ratio(r.best, r.vendor_best)});
    }
    double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s", table.str().c_str());
    std::printf("%zu problems tuned in %.1f s into %s\n", problems.size(), total, a.db.c_str());
    std::size_t equivalent = 0;
    for (const TuneResult& r : results) equivalent += r.equivalent;
    if (equivalent > 0)
        std::printf("%zu proposals were equivalent to a config already measured at their problem's sizes "
                    "(not measured again, no budget spent)\n", equivalent);
    if (mpi) {
        for (const auto& why : mpi->lost()) std::fprintf(stderr, "mpi: lost %s\n", why.c_str());
        if (!mpi->lost().empty())
            std::fprintf(stderr, "mpi: every result that reached rank 0 is stored\n");
    }
    if (after) after(tuner, measurer, db, run_id, opt);
}

namespace {

// Reads a record file: one JSON object per line with "problem" and "count"; counts of the
// same shape add up. Returns (count, problem), most frequent first, ties by shape key.
std::vector<std::pair<std::uint64_t, Problem>> read_record(const std::string& path) {
    std::ifstream in = open_input(path, "record");
    std::map<std::string, std::pair<std::uint64_t, Problem>> by_key;
    std::string line;
    for (std::size_t number = 1; std::getline(in, line); ++number) {
        if (line.empty()) continue;
        auto where = "record: '" + path + "' line " + std::to_string(number) + ": ";
        try {
            auto j = nlohmann::json::parse(line);
            require(j.is_object() && j.contains("problem") && j.contains("count"), "expected {\"problem\": ..., \"count\": N}");
            require(j["count"].is_number_unsigned() && j["count"].get<std::uint64_t>() >= 1, "'count' must be a positive integer");
            Problem p = j["problem"].get<Problem>();
            auto& slot = by_key[shape_key(p)];
            slot.second = p;
            require(!__builtin_add_overflow(slot.first, j["count"].get<std::uint64_t>(), &slot.first), "'count' overflows");
        } catch (const nlohmann::json::exception& e) {
            throw Error(where + "not valid JSON: " + e.what());
        } catch (const Error& e) {
            throw Error(where + e.what());
        }
    }
    require(!in.bad(), "record: cannot read '" + path + "'");
    std::vector<std::pair<std::uint64_t, Problem>> out;
    for (auto& [key, entry] : by_key) out.push_back(entry);
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    return out;
}

// tune model's attention problems: how many candidates each gets and the decode KV length.
struct AttentionWorkload {
    std::size_t budget = 8;
    std::int64_t decode_kv_len = 4096;
    std::int64_t decode_page = 0;  // keys per page of a paged KV cache (the decode step); 0 = contiguous
};

// Whether the backend's attention templates take Q, K, V in `dtype`: f32 and bf16 on the CPU
// (cpu.attention.fused widens a bf16 KV cache as it reads it), bf16 / f16 on the GPUs
// (cuda.attention.flash, hip.attention.flash). tune model leaves attention out otherwise.
bool attention_dtype(Backend backend, DType dtype) {
    if (backend == Backend::cpu) return dtype == DType::f32 || dtype == DType::bf16;
    return dtype == DType::bf16 || dtype == DType::f16;
}

std::vector<std::int64_t> parse_tokens(const std::string& text) {
    std::vector<std::int64_t> out;
    // Every comma separates two counts: "1,", ",1" and "1,,2" name an empty one.
    for (std::size_t begin = 0; !text.empty() && begin <= text.size();) {
        const std::size_t end = std::min(text.find(',', begin), text.size());
        const std::string item = text.substr(begin, end - begin);
        std::int64_t v = 0;
        const auto [stop, error] = std::from_chars(item.data(), item.data() + item.size(), v);
        require(!item.empty() && error == std::errc() && stop == item.data() + item.size() && v >= 1,
                "--tokens: '" + item + "' is not a positive integer");
        out.push_back(v);
        begin = end + 1;
    }
    require(!out.empty(), "--tokens: give at least one token count, e.g. 1,16,512");
    return out;
}

}  // namespace

namespace {
std::string flag_of(std::string_view dim) {
    std::string flag = "--" + std::string(dim);
    std::replace(flag.begin(), flag.end(), '_', '-');
    return flag;
}
}  // namespace

void DimOptions::add_to(CLI::App& cmd, std::initializer_list<OpKind> ops) {
    for (OpKind op : ops)
        for (const DimSpec& spec : dim_specs(op)) {
            std::string name(spec.name), flag = flag_of(spec.name);
            if (cmd.get_option_no_throw(flag)) continue;  // shared by several ops
            auto* opt = cmd.add_option_function<std::string>(
                               flag, [this, name](const std::string& text) { given_[name] = text; }, std::string(spec.help))
                            ->type_name(spec.labels.empty() ? "INT" : "NAME");
            // A 0/1 dim given without a value means 1: `--causal` reads as `--causal 1`.
            // (--help then shows "=1": the value of the bare flag, not the default, said here.)
            if (spec.kind == DimKind::exact && spec.max_value == 1 && spec.labels.empty())
                opt->expected(0, 1)->default_str("1")->description(std::string(spec.help) +
                                                                     " (0 or 1, default 0; the flag alone means 1)");
        }
}

Problem DimOptions::problem(OpKind op, DType dtype) const {
    Problem p;
    p.op = op;
    p.dtype = dtype;
    auto specs = dim_specs(op);
    for (const auto& entry : given_) {
        const std::string& name = entry.first;
        bool known = std::any_of(specs.begin(), specs.end(), [&](const DimSpec& s) { return s.name == name; });
        require(known, flag_of(name) + ": does not apply to " + std::string(to_string(op)));
    }
    for (std::size_t i = 0; i < specs.size(); ++i) {
        auto it = given_.find(std::string(specs[i].name));
        if (it == given_.end()) {
            require(!(specs[i].kind == DimKind::size && specs[i].default_value == 0),
                    flag_of(specs[i].name) + " is required for " + std::string(to_string(op)));
            p.dims[i] = specs[i].default_value;
            continue;
        }
        try {
            p.dims[i] = parse_dim_value(specs[i], it->second);
        } catch (const Error& e) {
            throw Error(flag_of(specs[i].name) + ": " + e.what());
        }
    }
    validate(p);
    return p;
}

void add_tune_commands(CLI::App& app) {
    // tune model
    {
        auto* cmd = app.add_subcommand("model", "tune the GEMMs and attention of one transformer layer of a Hugging Face config.json");
        auto args = std::make_shared<TuneArgs>();
        auto path = std::make_shared<std::string>();
        auto tokens = std::make_shared<std::string>("1,16,512");
        auto buckets = std::make_shared<BucketArgs>();
        cmd->add_option("config", *path, "path to config.json")->required();
        cmd->add_option("--tokens", *tokens, "comma-separated token counts (the GEMMs' m)")->capture_default_str();
        auto attention = std::make_shared<AttentionWorkload>();
        cmd->add_option("--kv-len", attention->decode_kv_len, "KV length of the decode attention problem")
            ->capture_default_str()
            ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 24));
        cmd->add_option("--kv-page", attention->decode_page,
                        "the decode step reads a paged KV cache of this many keys per page (0 = contiguous)")
            ->capture_default_str()
            ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 20));
        cmd->add_option("--attention-budget", attention->budget,
                        "candidates per attention problem (at most --budget); 0 = skip attention")
            ->capture_default_str()
            ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 20));
        auto swiglu_budget = std::make_shared<std::size_t>(8);
        cmd->add_option("--swiglu-budget", *swiglu_budget,
                        "candidates per fused SwiGLU problem (gated silu MLPs, CPU; at most --budget); 0 = skip")
            ->capture_default_str()
            ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 20));
        auto layout = std::make_shared<std::string>("out-in");
        cmd->add_option("--weight-layout", *layout,
                        "how the runtime holds the projection weights: out-in ([out, in], nn.Linear: x W^T) or "
                        "in-out ([in, out], GPT-2's Conv1D checkpoints: x W); the GEMM keys follow it")
            ->capture_default_str();
        auto list = std::make_shared<bool>(false);
        cmd->add_flag("--list", *list, "print the problems the config yields (shapes, GFLOP) and exit; nothing is measured");
        add_tune_options(*cmd, *args);
        add_bucket_options(*cmd, *buckets);
        cmd->callback([=] {
            check_tune_args(*args);  // --list too: a listed command is one the user then runs
            require(!buckets->regret || !buckets->rules.empty(), "--regret: needs --buckets");
            ModelShape model = load_model_config(*path);
            const DType dtype = parse_dtype(args->dtype, "--dtype");
            auto token_counts = parse_tokens(*tokens);
            const WeightLayout weights = parse_weight_layout(*layout);
            auto problems = layer_gemms(model, token_counts, dtype, weights);
            const Backend backend = parse_backend(args->backend, "--backend");
            // The SwiGLU templates are CPU ones and read [out, in] weights.
            const bool swiglu = *swiglu_budget > 0 && backend == Backend::cpu && weights == WeightLayout::out_in;
            if (swiglu)
                for (auto& sp : layer_swiglu(model, token_counts, dtype)) {
                    sp.budget = *swiglu_budget;
                    problems.push_back(std::move(sp));
                }
            if (attention->budget > 0 && attention_dtype(backend, dtype))
                for (auto& ap : layer_attention(model, token_counts, attention->decode_kv_len, dtype)) {
                    ap.budget = attention->budget;
                    if (ap.name == "attention_decode" && attention->decode_page > 0)
                        ap.problem.set_dim("page", attention->decode_page);
                    problems.push_back(std::move(ap));
                }
            std::string intro = "model:  " + describe(model) + " -> " + std::to_string(problems.size()) + " problems\n";
            for (const auto& left_out : model.unmodelled) intro += "        not modelled: " + left_out + "\n";
            if (weights != checkpoint_layout(model))
                intro += std::string("        note: ") + model.model_type + " checkpoints store the weights " +
                         to_string(checkpoint_layout(model)) + "; these GEMMs hold them " + to_string(weights) +
                         " (--weight-layout)\n";
            if (weights == WeightLayout::in_out && model.swiglu_mlp() && *swiglu_budget > 0)
                intro += "        note: no fused SwiGLU problems: the fused kernels read out-in weights\n";
            if (dtype == DType::f32 && (model.weights_dtype == "bfloat16" || model.weights_dtype == "float16"))
                intro += "        note: the config's weights are " + model.weights_dtype +
                         "; --dtype bf16 tunes bf16 operands (--allow-bf16: bf16 compute for f32 ones)\n";
            if (*list) {
                require(buckets->rules.empty(), "--list: not with --buckets");
                std::printf("%s", intro.c_str());
                Table table({"problem", "tokens", "shape", "GFLOP", "budget"});
                for (const auto& np : problems)
                    table.add({np.name, std::to_string(np.tokens), shape_text(np.problem),
                               format_fixed(flop_count(np.problem) * 1e-9, 3),
                               std::to_string(np.budget > 0 ? std::min(np.budget, args->budget) : args->budget)});
                std::printf("%s", table.str().c_str());
                return;
            }
            std::string command = "tune model " + *path + " --tokens " + *tokens;
            if (weights != WeightLayout::out_in) command += std::string(" --weight-layout ") + to_string(weights);
            if (!buckets->rules.empty())
                return tune_model_buckets(model, token_counts, dtype, weights, *buckets, *args,
                                          command + " --buckets " + buckets->rules, intro);
            run_tuning(problems, *args, command, intro);
        });
    }
    // tune recorded: what a dispatcher in record mode saw, most frequent first
    {
        auto* cmd = app.add_subcommand("recorded", "tune the shapes a runtime recorded (LIBTUNE_RECORD), most frequent first");
        auto args = std::make_shared<TuneArgs>();
        auto from = std::make_shared<std::string>();
        cmd->add_option("--from", *from, "record file (JSON lines written by the dispatcher)")->required();
        add_tune_options(*cmd, *args);
        cmd->callback([=] {
            check_tune_args(*args);
            auto recorded = read_record(*from);
            std::vector<NamedProblem> problems;
            for (const auto& [count, p] : recorded)
                problems.push_back({std::string(to_string(p.op)) + " (seen " + std::to_string(count) + "x)", tokens_of(p), p});
            if (problems.empty()) {  // nothing to tune: the store is not opened
                std::printf("record: %s holds no shapes; nothing to tune\n", from->c_str());
                return;
            }
            run_tuning(problems, *args, "tune recorded --from " + *from,
                       "record: " + *from + " -> " + std::to_string(problems.size()) + " distinct shapes\n");
        });
    }
    // tune retune: after an upgrade, the shapes whose stored results are for an older version
    // of a template (the version is a hash of its source), which the runtime no longer serves.
    {
        auto* cmd = app.add_subcommand(
            "retune", "re-tune the shapes a store tuned with an older version of a template (after an upgrade)");
        auto args = std::make_shared<TuneArgs>();
        add_tune_options(*cmd, *args);
        cmd->callback([=] {
            check_tune_args(*args);
            require_existing(args->db);
            const DeviceInfo device = backend_device(args->backend);
            const StaleShapes stale = stale_shapes(args->db, device, builtin_registry(device));
            if (stale.bad_rows > 0)
                std::fprintf(stderr, "store: %zu rows failed to decode and were skipped (see tune db verify)\n",
                             stale.bad_rows);
            if (stale.problems.empty()) {
                std::printf("%s: no shape of this device is served only by rows of an older template version; "
                            "nothing to re-tune\n",
                            args->db.c_str());
                return;
            }
            run_tuning(stale.problems, *args, "tune retune --db " + args->db,
                       "store: " + args->db + ": " + std::to_string(stale.problems.size()) +
                           (stale.problems.size() == 1 ? " shape" : " shapes") +
                           " with rows of older template versions and none of the current one\n");
        });
    }
    // tune gemm | tune swiglu: one problem, dims as flags
    for (OpKind op : {OpKind::gemm, OpKind::swiglu, OpKind::attention}) {
        const std::string name(to_string(op));
        auto* cmd = app.add_subcommand(name, op == OpKind::gemm     ? "tune one GEMM problem (with an optional epilogue)"
                                             : op == OpKind::swiglu ? "tune one SwiGLU (gated MLP) problem"
                                                                    : "tune one attention problem (fused vs unfused)");
        auto args = std::make_shared<TuneArgs>();
        auto dims = std::make_shared<DimOptions>();
        dims->add_to(*cmd, {op});
        auto scale = std::make_shared<double>(0);
        if (op == OpKind::attention) add_scale_option(*cmd, *scale);
        add_tune_options(*cmd, *args);
        cmd->callback([=] {
            Problem p = dims->problem(op, parse_dtype(args->dtype, "--dtype"));
            if (*scale != 0) p = with_scale(p, *scale);
            run_tuning({{name, tokens_of(p), p}}, *args, "tune " + shape_key(p));
        });
    }
    // tune lookup <op>
    {
        auto* cmd = app.add_subcommand("lookup", "print the config the runtime would use for a shape, and why");
        auto op = std::make_shared<std::string>();
        auto db = std::make_shared<std::string>("tuned.db");
        auto dtype = std::make_shared<std::string>("f32");
        auto dims = std::make_shared<DimOptions>();
        auto tolerance = std::make_shared<double>(0);
        auto max_workspace = std::make_shared<std::string>();
        cmd->add_option("op", *op, "operation: gemm, swiglu, attention")->required();
        cmd->add_option("--max-workspace", *max_workspace,
                        "the fastest stored config whose workspace fits, e.g. 64MiB (from the shape's Pareto front)");
        auto user_db = std::make_shared<std::string>();
        cmd->add_option("--db", *db, "SQLite file to read (the system store)")->capture_default_str();
        cmd->add_option("--user-db", *user_db, "a user store whose entries override --db's");
        cmd->add_option("--dtype", *dtype, "element type")->capture_default_str();
        cmd->add_option("--tolerance", *tolerance, "the caller's accuracy budget (0 = exact semantics of the dtype)")
            ->check(finite_range(0.0, 1.0));
        dims->add_to(*cmd, {OpKind::gemm, OpKind::swiglu, OpKind::attention});
        auto scale = std::make_shared<double>(0);
        add_scale_option(*cmd, *scale);
        cmd->callback([=] {
            Problem p = dims->problem(parse_op(*op, "lookup op"), parse_dtype(*dtype, "--dtype"));
            p.tolerance = *tolerance;
            if (*scale != 0) p = with_scale(p, *scale);
            auto dispatcher = Dispatcher::open(*db, *user_db);
            const bool capped = !max_workspace->empty();
            Selection s = capped ? dispatcher->lookup_under(p, parse_bytes(*max_workspace, "--max-workspace"))
                                 : dispatcher->lookup(p);
            std::printf("problem:  %s\n", shape_key(p).c_str());
            if (!s.tmpl) throw Error("no stored config for this shape fits --max-workspace " + *max_workspace);
            if (capped)
                std::printf("workspace: %s bytes (cap %s)\n",
                            std::to_string(s.tmpl->workspace_bytes(p, *s.config)).c_str(), max_workspace->c_str());
            std::printf("template: %s\nconfig:   %s\n", s.tmpl->info().name.c_str(), s.config->text().c_str());
            switch (s.source) {
                case LookupSource::exact:
                    std::printf("source:   exact (tuned for this shape in %s; measured %s)\n", s.store->c_str(),
                                format_seconds(s.tuned_median_s).c_str());
                    break;
                case LookupSource::nearest:
                    std::printf("source:   nearest (tuned for '%s' in %s, measured %s there; valid for this shape)\n",
                                shape_key(*s.tuned_shape).c_str(), s.store->c_str(), format_seconds(s.tuned_median_s).c_str());
                    break;
                case LookupSource::default_config:
                    std::printf("source:   default (no tuned shape of this kind in %s)\n", db->c_str());
                    break;
                case LookupSource::bucket:
                    std::printf("source:   bucket (tuned for its bucket's representative '%s' in %s, measured %s there;"
                                " buckets %s)\n",
                                shape_key(*s.tuned_shape).c_str(), s.store->c_str(), format_seconds(s.tuned_median_s).c_str(),
                                dispatcher->buckets().text().c_str());
                    if (const BucketRegret* r = dispatcher->bucket_regret(p))
                        std::printf("regret:   %s%% max, %s%% mean over %zu measured shapes of the bucket\n",
                                    format_fixed(100 * r->max_regret(), 1).c_str(),
                                    format_fixed(100 * r->mean_regret(), 1).c_str(), r->samples.size());
                    break;
                case LookupSource::predicted:
                    std::printf("source:   predicted (the store's cost model ranked the tuned shapes' configs and the default)\n");
                    break;
            }
            const auto& st = dispatcher->stats();
            std::printf("store:    %zu tuned shapes, %zu stale rows, %zu rejected rows, snapshot %s\n", st.entries, st.stale,
                        st.rejected, dispatcher->snapshot_id().c_str());
            for (const auto& why : st.rejections) std::printf("rejected: %s\n", why.c_str());
        });
    }
}

}  // namespace tune::cli
