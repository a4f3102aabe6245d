// The C API (tune/c_api.h) over the C++ core. Every entry point catches every exception and
// turns it into a status code plus a thread-local message; nothing C++ leaves this file.
#include "tune/c_api.h"

#include <algorithm>
#include <limits>
#include <mutex>
#include <new>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "tune/db/sqlite_database.hpp"
#include "tune/dispatcher.hpp"
#include "tune/error.hpp"
#include "tune/model.hpp"
#include "tune/search/strategy.hpp"
#include "tune/tuner.hpp"

struct tune_dispatcher {
    std::unique_ptr<tune::Dispatcher> dispatcher;
    // Config texts handed out by lookups: the Config objects live as long as the dispatcher,
    // so their texts are computed once and kept alongside.
    mutable std::mutex texts_mutex;
    mutable std::unordered_map<const tune::Config*, std::string> texts;
};

namespace {

thread_local std::string last_error;

// An error whose status the C API chooses explicitly (a tune::Error gets the call's default).
struct StatusError : tune::Error {
    tune_status status;
    StatusError(tune_status s, const std::string& message) : tune::Error(message), status(s) {}
};

// Callers test first and build the message only on failure: lookups and GEMM calls go
// through these checks on every call.
[[noreturn]] void fail(tune_status status, const std::string& message) { throw StatusError(status, message); }

template <class F>
int guarded(const char* function, tune_status on_error, F&& body) noexcept {
    try {
        body();
        last_error.clear();
        return TUNE_OK;
    } catch (const StatusError& e) {
        last_error = std::string(function) + ": " + e.what();
        return e.status;
    } catch (const tune::InvalidArgument& e) {
        last_error = std::string(function) + ": " + e.what();
        return TUNE_ERR_INVALID_ARGUMENT;
    } catch (const tune::DatabaseError& e) {
        last_error = std::string(function) + ": " + e.what();
        return TUNE_ERR_DATABASE;
    } catch (const tune::Error& e) {
        last_error = std::string(function) + ": " + e.what();
        return on_error;
    } catch (const std::bad_alloc&) {
        last_error = std::string(function) + ": out of memory";
        return TUNE_ERR_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        last_error = std::string(function) + ": " + e.what();
        return TUNE_ERR_INTERNAL;
    } catch (...) {
        last_error = std::string(function) + ": unknown exception";
        return TUNE_ERR_INTERNAL;
    }
}

// The library's dtype for a C one; any other value is an invalid argument.
tune::DType to_dtype(tune_dtype d) {
    if (!(d == TUNE_F32 || d == TUNE_BF16))
        fail(TUNE_ERR_INVALID_ARGUMENT, "dtype " + std::to_string(int(d)) + " is not TUNE_F32 or TUNE_BF16");
    return d == TUNE_BF16 ? tune::DType::bf16 : tune::DType::f32;
}

tune_dtype to_c(tune::DType d) { return d == tune::DType::bf16 ? TUNE_BF16 : TUNE_F32; }

void check_tolerance(double tolerance) {
    if (!(tolerance >= 0 && tolerance <= 1))
        fail(TUNE_ERR_INVALID_ARGUMENT, "tolerance must be in [0, 1], got " + std::to_string(tolerance));
}

void check_flag(int value, const char* name) {
    if (value != 0 && value != 1)
        fail(TUNE_ERR_INVALID_ARGUMENT, std::string(name) + " must be 0 or 1, got " + std::to_string(value));
}

// tune::validate with its message as an invalid-argument status.
void check_sizes(const tune::Problem& p) {
    try {
        tune::validate(p);
    } catch (const tune::Error& e) {
        throw StatusError(TUNE_ERR_INVALID_ARGUMENT, e.what());
    }
}

// The Problem a C descriptor describes; every field is checked, none is clamped. Lookups pass
// sizes=false to keep the size checks off their hot path: an exact hit is a stored, validated
// shape, and the dispatcher validates any other shape itself.
tune::Problem to_problem(const tune_gemm_desc* g, bool sizes = true) {
    if (!g) fail(TUNE_ERR_INVALID_ARGUMENT, "gemm descriptor is NULL");
    const tune::DType dtype = to_dtype(g->dtype);
    if (!(g->act >= TUNE_ACT_NONE && g->act <= TUNE_ACT_SILU))
        fail(TUNE_ERR_INVALID_ARGUMENT, "act " + std::to_string(int(g->act)) + " is not a tune_activation");
    check_flag(g->trans_a, "trans_a");
    check_flag(g->trans_b, "trans_b");
    check_flag(g->bias, "bias");
    check_flag(g->residual, "residual");
    check_tolerance(g->tolerance);
    tune::Problem p = tune::make_gemm(g->m, g->n, g->k, dtype, g->trans_a != 0, g->trans_b != 0, g->batch);
    p = tune::with_epilogue(p, g->bias != 0, tune::Activation(g->act), g->residual != 0);
    p.tolerance = g->tolerance;
    if (sizes) check_sizes(p);
    return p;
}

tune::Problem to_problem(const tune_swiglu_desc* d, bool sizes = true) {
    if (!d) fail(TUNE_ERR_INVALID_ARGUMENT, "swiglu descriptor is NULL");
    const tune::DType dtype = to_dtype(d->dtype);
    check_tolerance(d->tolerance);
    tune::Problem p = tune::make_swiglu(d->m, d->n, d->k, dtype);
    p.tolerance = d->tolerance;
    if (sizes) check_sizes(p);
    return p;
}

// bf16: the same problem with Q, K and V in bf16 (forward only).
tune::Problem to_problem(const tune_attention_desc* a, bool sizes = true, bool bf16 = false) {
    if (!a) fail(TUNE_ERR_INVALID_ARGUMENT, "attention descriptor is NULL");
    if (bf16 && a->backward) fail(TUNE_ERR_INVALID_ARGUMENT, "bf16 attention is forward only: desc has backward=1");
    check_flag(a->causal, "causal");
    check_flag(a->backward, "backward");
    check_tolerance(a->tolerance);
    tune::Problem p = tune::make_attention(a->batch, a->heads, a->kv_heads, a->q_len, a->kv_len, a->head_dim,
                                           a->causal != 0, a->window);
    if (a->backward) p.set_dim("backward", 1);
    if (a->scale != 0) {  // with_scale names what is wrong with it
        try {
            p = tune::with_scale(p, a->scale);
        } catch (const tune::Error& e) {
            throw StatusError(TUNE_ERR_INVALID_ARGUMENT, e.what());
        }
    }
    p.tolerance = a->tolerance;
    if (bf16) p.dtype = tune::DType::bf16;
    if (sizes) check_sizes(p);
    return p;
}

tune_source to_c(tune::LookupSource s) {
    switch (s) {
        case tune::LookupSource::exact: return TUNE_SOURCE_EXACT;
        case tune::LookupSource::nearest: return TUNE_SOURCE_NEAREST;
        case tune::LookupSource::bucket: return TUNE_SOURCE_BUCKET;
        case tune::LookupSource::predicted: return TUNE_SOURCE_PREDICTED;
        default: return TUNE_SOURCE_DEFAULT;
    }
}

// Copies text into a fixed C buffer; refuses to truncate.
template <std::size_t N>
void copy_text(char (&dst)[N], const std::string& text, const char* what) {
    if (text.size() >= N) fail(TUNE_ERR_INTERNAL, std::string(what) + " does not fit the result buffer (" +
                                                  std::to_string(text.size()) + " bytes)");
    text.copy(dst, text.size());
    dst[text.size()] = '\0';
}

// The dispatcher's selection for a problem, its config text kept alive by the handle.
void lookup(const tune_dispatcher* d, const tune::Problem& p, tune_selection* out) {
    if (!d) fail(TUNE_ERR_INVALID_ARGUMENT, "dispatcher handle is NULL");
    if (!out) fail(TUNE_ERR_INVALID_ARGUMENT, "out is NULL");
    tune::Selection s;
    try {
        s = d->dispatcher->lookup(p);
    } catch (const tune::Error& e) {
        check_sizes(p);  // bad sizes: an invalid argument, not an unsupported problem
        throw;
    }
    const char* config = nullptr;
    {
        std::lock_guard lock(d->texts_mutex);
        auto [it, inserted] = d->texts.try_emplace(s.config);
        if (inserted) it->second = s.config->text();
        config = it->second.c_str();
    }
    out->template_name = s.tmpl->info().name.c_str();
    out->config = config;
    out->store = s.store ? s.store->c_str() : "";
    out->source = to_c(s.source);
    out->tuned_median_s = s.tuned_median_s;
}

// Tunes one problem into the store at db_path with the C options; `label` names the run.
void tune_into(const char* db_path, const tune::Problem& p, const tune_tune_options* options, tune_tune_result* out,
               const char* label) {
    if (!db_path || !*db_path) fail(TUNE_ERR_INVALID_ARGUMENT, "db_path is NULL or empty");
    const tune_tune_options o = options ? *options : tune_tune_options_init();
    if (o.budget < 1) fail(TUNE_ERR_INVALID_ARGUMENT, "budget must be at least 1");
    if (!(o.time_limit_s >= 0)) fail(TUNE_ERR_INVALID_ARGUMENT, "time_limit_s must be >= 0");
    check_flag(o.isolate, "isolate");
    tune::TuneOptions opt;
    opt.budget = o.budget;
    opt.time_limit_s = o.time_limit_s;
    opt.seed = o.seed;
    if (o.strategy) opt.strategy = o.strategy;
    try {  // before the store is opened: a bad name adds no run to it
        tune::make_strategy(opt.strategy, std::make_shared<tune::Space>(), {});
    } catch (const tune::Error& e) {
        fail(TUNE_ERR_INVALID_ARGUMENT, e.what());
    }

    tune::DeviceInfo device = tune::detect_cpu();
    tune::TemplateRegistry registry = tune::builtin_registry(device);
    if (registry.for_problem(p, tune::Backend::cpu).empty())
        fail(TUNE_ERR_UNSUPPORTED, "no template on this device computes '" + tune::shape_key(p) + "'");
    std::unique_ptr<tune::SqliteDatabase> db;
    try {
        db = std::make_unique<tune::SqliteDatabase>(db_path);
    } catch (const tune::Error& e) {
        throw StatusError(TUNE_ERR_DATABASE, e.what());
    }
    tune::MeasureOptions mo;
    mo.isolate = o.isolate != 0;
    tune::Measurer measurer(device, mo);
    std::int64_t run_id = db->start_run({0, label, opt.strategy, opt.seed, "", ""}, device);
    tune::Tuner tuner(*db, registry, measurer, run_id);
    tune::TuneResult r = tuner.tune(p, opt);
    if (out) {
        *out = tune_tune_result{};
        out->measured = r.measured;
        out->reused = r.reused;
        out->failed = r.failed;
        if (r.default_config && r.default_config->status == tune::Status::ok)
            out->default_median_s = r.default_config->stats.median_s;
        if (r.best) {
            out->found = 1;
            copy_text(out->template_name, r.best->template_name, "template name");
            copy_text(out->config, r.best->config.text(), "config text");
            out->median_s = r.best->stats.median_s;
            out->gflops = r.best->gflops();
        }
    }
    if (!r.best)
        fail(TUNE_ERR_NO_RESULT, "no correct candidate for '" + tune::shape_key(p) + "' (" + std::to_string(r.failed) +
                                     " failed)");
}

// The problem of a paged cache of `page` keys per page (forward only).
tune::Problem to_paged_problem(const tune_attention_desc* a, std::int64_t page, int bf16, bool sizes = true) {
    check_flag(bf16, "bf16");
    if (a && a->backward) fail(TUNE_ERR_INVALID_ARGUMENT, "a paged KV cache is for the forward only: desc has backward=1");
    if (page < 1 || page > (1 << 20))
        fail(TUNE_ERR_INVALID_ARGUMENT, "page (keys per page) must be in [1, 2^20], got " + std::to_string(page));
    tune::Problem p = to_problem(a, false, bf16 != 0);
    p.set_dim("page", page);
    if (sizes) check_sizes(p);
    return p;
}

// A paged cache for run_forward: keys per page, the pool's pages, the block table.
struct Paged {
    std::int64_t page, pool_pages;
    const std::int32_t* table;
};

// The forward of tune_attention and tune_attention_bf16 (Q, K, V of the problem's dtype), and
// of their paged forms (K and V are pools of pool_pages pages, mapped by the table).
void run_forward(const tune_dispatcher* d, const tune_attention_desc* a, bool bf16, const void* q, const void* k,
                 const void* v, float* o, float* lse, const Paged* paged = nullptr) {
    if (!d) fail(TUNE_ERR_INVALID_ARGUMENT, "dispatcher handle is NULL");
    if (a && a->backward) fail(TUNE_ERR_INVALID_ARGUMENT, "desc has backward=1: use tune_attention_backward");
    const tune::Problem p = paged ? to_paged_problem(a, paged->page, bf16) : to_problem(a, true, bf16);
    if (!q || !k || !v || !o) fail(TUNE_ERR_INVALID_ARGUMENT, "operand Q, K, V or O is NULL");
    std::int64_t pool_pages = 0;
    const std::int32_t* table = nullptr;
    if (paged) {
        pool_pages = paged->pool_pages, table = paged->table;
        if (!table) fail(TUNE_ERR_INVALID_ARGUMENT, "block_table is NULL");
        if (pool_pages < 1 || pool_pages > std::numeric_limits<std::int32_t>::max())
            fail(TUNE_ERR_INVALID_ARGUMENT, "pool_pages must be in [1, 2^31), got " + std::to_string(pool_pages));
    }
    // Runtimes rarely need the LSE; the kernels always write it, so it goes to scratch.
    thread_local std::vector<float> lse_scratch;
    if (!lse) {
        lse_scratch.resize(std::size_t(a->batch * a->heads * a->q_len));
        lse = lse_scratch.data();
    }
    const void* inputs[] = {q, k, v, table, &pool_pages};
    void* outputs[] = {o, lse};
    d->dispatcher->run(p, {std::span<const void* const>(inputs, paged ? 5 : 3), outputs});
}

}  // namespace

extern "C" {

const char* tune_last_error(void) { return last_error.c_str(); }

const char* tune_status_name(int status) {
    switch (status) {
        case TUNE_OK: return "ok";
        case TUNE_ERR_INVALID_ARGUMENT: return "invalid argument";
        case TUNE_ERR_DATABASE: return "database error";
        case TUNE_ERR_UNSUPPORTED: return "unsupported";
        case TUNE_ERR_RUNTIME: return "runtime error";
        case TUNE_ERR_NO_RESULT: return "no result";
        case TUNE_ERR_OUT_OF_MEMORY: return "out of memory";
        case TUNE_ERR_INTERNAL: return "internal error";
        default: return "unknown status";
    }
}

const char* tune_version(void) { return LIBTUNE_VERSION; }
int tune_c_api_version(void) { return TUNE_C_API_VERSION; }

tune_gemm_desc tune_gemm_desc_init(int64_t m, int64_t n, int64_t k) {
    tune_gemm_desc g{};
    g.batch = 1;
    g.m = m;
    g.n = n;
    g.k = k;
    g.dtype = TUNE_F32;
    g.act = TUNE_ACT_NONE;
    return g;
}

tune_swiglu_desc tune_swiglu_desc_init(int64_t m, int64_t n, int64_t k) {
    tune_swiglu_desc s{};
    s.m = m;
    s.n = n;
    s.k = k;
    s.dtype = TUNE_F32;
    return s;
}

int tune_dispatcher_open(const char* system_db, const char* user_db, tune_dispatcher** out) {
    return guarded("tune_dispatcher_open", TUNE_ERR_DATABASE, [&] {
        if (!out) fail(TUNE_ERR_INVALID_ARGUMENT, "out is NULL");
        if (system_db && !*system_db)
            fail(TUNE_ERR_INVALID_ARGUMENT, "system_db path is empty (pass NULL for none)");
        if (user_db && !*user_db) fail(TUNE_ERR_INVALID_ARGUMENT, "user_db path is empty (pass NULL for none)");
        if (!system_db && user_db) fail(TUNE_ERR_INVALID_ARGUMENT, "user_db given without a system_db");
        auto handle = std::make_unique<tune_dispatcher>();
        handle->dispatcher = tune::Dispatcher::open(system_db ? system_db : "", user_db ? user_db : "");
        *out = handle.release();
    });
}

void tune_dispatcher_close(tune_dispatcher* d) { delete d; }

int tune_dispatcher_stats(const tune_dispatcher* d, size_t* entries, size_t* stale, size_t* rejected) {
    return guarded("tune_dispatcher_stats", TUNE_ERR_INTERNAL, [&] {
        if (!d) fail(TUNE_ERR_INVALID_ARGUMENT, "dispatcher handle is NULL");
        const auto& s = d->dispatcher->stats();
        if (entries) *entries = s.entries;
        if (stale) *stale = s.stale;
        if (rejected) *rejected = s.rejected;
    });
}

int tune_lookup_gemm(const tune_dispatcher* d, const tune_gemm_desc* g, tune_selection* out) {
    return guarded("tune_lookup_gemm", TUNE_ERR_UNSUPPORTED, [&] { lookup(d, to_problem(g, false), out); });
}

int tune_lookup_attention(const tune_dispatcher* d, const tune_attention_desc* a, tune_selection* out) {
    return guarded("tune_lookup_attention", TUNE_ERR_UNSUPPORTED, [&] { lookup(d, to_problem(a, false), out); });
}

int tune_lookup_attention_bf16(const tune_dispatcher* d, const tune_attention_desc* a, tune_selection* out) {
    return guarded("tune_lookup_attention_bf16", TUNE_ERR_UNSUPPORTED,
                   [&] { lookup(d, to_problem(a, false, true), out); });
}

int tune_gemm(const tune_dispatcher* d, const tune_gemm_desc* g, const void* a, const void* b, const float* bias,
              const float* residual, float* c) {
    return guarded("tune_gemm", TUNE_ERR_RUNTIME, [&] {
        if (!d) fail(TUNE_ERR_INVALID_ARGUMENT, "dispatcher handle is NULL");
        tune::Problem p = to_problem(g);
        if (!a || !b || !c) fail(TUNE_ERR_INVALID_ARGUMENT, "operand A, B or C is NULL");
        if ((bias != nullptr) != (g->bias != 0))
            fail(TUNE_ERR_INVALID_ARGUMENT,
                 g->bias ? "desc has bias=1 but bias is NULL" : "bias given but desc has bias=0");
        if ((residual != nullptr) != (g->residual != 0))
            fail(TUNE_ERR_INVALID_ARGUMENT, g->residual ? "desc has residual=1 but residual is NULL"
                                                        : "residual given but desc has residual=0");
        const void* inputs[4] = {a, b};
        std::size_t n_inputs = 2;
        if (bias) inputs[n_inputs++] = bias;
        if (residual) inputs[n_inputs++] = residual;
        void* outputs[] = {c};
        d->dispatcher->run(p, {std::span<const void* const>(inputs, n_inputs), outputs});
    });
}

int tune_lookup_swiglu(const tune_dispatcher* d, const tune_swiglu_desc* s, tune_selection* out) {
    return guarded("tune_lookup_swiglu", TUNE_ERR_UNSUPPORTED, [&] { lookup(d, to_problem(s, false), out); });
}

int tune_swiglu(const tune_dispatcher* d, const tune_swiglu_desc* s, const void* x, const void* w_gate,
                const void* w_up, float* out) {
    return guarded("tune_swiglu", TUNE_ERR_RUNTIME, [&] {
        if (!d) fail(TUNE_ERR_INVALID_ARGUMENT, "dispatcher handle is NULL");
        const tune::Problem p = to_problem(s);
        if (!x || !w_gate || !w_up || !out) fail(TUNE_ERR_INVALID_ARGUMENT, "operand x, w_gate, w_up or out is NULL");
        const void* inputs[] = {x, w_gate, w_up};
        void* outputs[] = {out};
        d->dispatcher->run(p, {inputs, outputs});
    });
}

int tune_tune_swiglu(const char* db_path, const tune_swiglu_desc* s, const tune_tune_options* options,
                     tune_tune_result* out) {
    return guarded("tune_tune_swiglu", TUNE_ERR_RUNTIME,
                   [&] { tune_into(db_path, to_problem(s), options, out, "c_api tune_tune_swiglu"); });
}

tune_tune_options tune_tune_options_init(void) {
    tune_tune_options o{};
    o.budget = 24;
    o.time_limit_s = 60;
    o.seed = 0;
    o.strategy = nullptr;
    o.isolate = 0;
    return o;
}

int tune_tune_gemm(const char* db_path, const tune_gemm_desc* g, const tune_tune_options* options,
                   tune_tune_result* out) {
    return guarded("tune_tune_gemm", TUNE_ERR_RUNTIME,
                   [&] { tune_into(db_path, to_problem(g), options, out, "c_api tune_tune_gemm"); });
}

tune_attention_desc tune_attention_desc_init(int64_t batch, int64_t heads, int64_t kv_heads, int64_t q_len,
                                             int64_t kv_len, int64_t head_dim) {
    return tune_attention_desc{
        .batch = batch, .heads = heads, .kv_heads = kv_heads, .q_len = q_len, .kv_len = kv_len, .head_dim = head_dim,
        .causal = 0, .window = 0, .backward = 0, .tolerance = 0, .scale = 0};
}

int tune_attention(const tune_dispatcher* d, const tune_attention_desc* a, const float* q, const float* k,
                   const float* v, float* o, float* lse) {
    return guarded("tune_attention", TUNE_ERR_RUNTIME, [&] { run_forward(d, a, false, q, k, v, o, lse); });
}

int tune_attention_bf16(const tune_dispatcher* d, const tune_attention_desc* a, const uint16_t* q, const uint16_t* k,
                        const uint16_t* v, float* o, float* lse) {
    return guarded("tune_attention_bf16", TUNE_ERR_RUNTIME, [&] { run_forward(d, a, true, q, k, v, o, lse); });
}

int tune_attention_backward(const tune_dispatcher* d, const tune_attention_desc* a, const float* q, const float* k,
                            const float* v, const float* o, const float* lse, const float* d_o, float* dq, float* dk,
                            float* dv) {
    return guarded("tune_attention_backward", TUNE_ERR_RUNTIME, [&] {
        if (!d) fail(TUNE_ERR_INVALID_ARGUMENT, "dispatcher handle is NULL");
        const tune::Problem p = to_problem(a);
        if (!a->backward) fail(TUNE_ERR_INVALID_ARGUMENT, "desc has backward=0: use tune_attention");
        if (!q || !k || !v || !o || !lse || !d_o)
            fail(TUNE_ERR_INVALID_ARGUMENT, "input Q, K, V, O, LSE or dO is NULL");
        if (!dq || !dk || !dv) fail(TUNE_ERR_INVALID_ARGUMENT, "output dQ, dK or dV is NULL");
        const void* inputs[] = {q, k, v, o, lse, d_o};
        void* outputs[] = {dq, dk, dv};
        d->dispatcher->run(p, {inputs, outputs});
    });
}

int tune_tune_attention(const char* db_path, const tune_attention_desc* a, const tune_tune_options* options,
                        tune_tune_result* out) {
    return guarded("tune_tune_attention", TUNE_ERR_RUNTIME,
                   [&] { tune_into(db_path, to_problem(a), options, out, "c_api tune_tune_attention"); });
}

int tune_tune_attention_bf16(const char* db_path, const tune_attention_desc* a, const tune_tune_options* options,
                             tune_tune_result* out) {
    return guarded("tune_tune_attention_bf16", TUNE_ERR_RUNTIME, [&] {
        tune_into(db_path, to_problem(a, true, true), options, out, "c_api tune_tune_attention_bf16");
    });
}

int tune_lookup_attention_paged(const tune_dispatcher* d, const tune_attention_desc* a, int64_t page, int bf16,
                                tune_selection* out) {
    return guarded("tune_lookup_attention_paged", TUNE_ERR_UNSUPPORTED,
                   [&] { lookup(d, to_paged_problem(a, page, bf16, false), out); });
}

int tune_attention_paged(const tune_dispatcher* d, const tune_attention_desc* a, int64_t page, int64_t pool_pages,
                         const float* q, const float* k_pool, const float* v_pool, const int32_t* block_table, float* o,
                         float* lse) {
    return guarded("tune_attention_paged", TUNE_ERR_RUNTIME,
                   [&] {
                       const Paged paged{page, pool_pages, block_table};
                       run_forward(d, a, false, q, k_pool, v_pool, o, lse, &paged);
                   });
}

int tune_attention_paged_bf16(const tune_dispatcher* d, const tune_attention_desc* a, int64_t page, int64_t pool_pages,
                              const uint16_t* q, const uint16_t* k_pool, const uint16_t* v_pool,
                              const int32_t* block_table, float* o, float* lse) {
    return guarded("tune_attention_paged_bf16", TUNE_ERR_RUNTIME,
                   [&] {
                       const Paged paged{page, pool_pages, block_table};
                       run_forward(d, a, true, q, k_pool, v_pool, o, lse, &paged);
                   });
}

int tune_tune_attention_paged(const char* db_path, const tune_attention_desc* a, int64_t page, int bf16,
                              const tune_tune_options* options, tune_tune_result* out) {
    return guarded("tune_tune_attention_paged", TUNE_ERR_RUNTIME, [&] {
        tune_into(db_path, to_paged_problem(a, page, bf16), options, out, "c_api tune_tune_attention_paged");
    });
}

int tune_model_problems(const char* config_path, const int64_t* tokens, size_t n_tokens, int64_t decode_kv_len,
                        tune_dtype dtype, tune_model_problem* out, size_t capacity, size_t* count) {
    return guarded("tune_model_problems", TUNE_ERR_INVALID_ARGUMENT, [&] {
        if (!count) fail(TUNE_ERR_INVALID_ARGUMENT, "count is NULL");
        *count = 0;
        if (!config_path) fail(TUNE_ERR_INVALID_ARGUMENT, "config_path is NULL");
        if (!tokens || n_tokens == 0) fail(TUNE_ERR_INVALID_ARGUMENT, "tokens: at least one token count is needed");
        if (capacity > 0 && !out) fail(TUNE_ERR_INVALID_ARGUMENT, "out is NULL with capacity " + std::to_string(capacity));
        const tune::DType dt = to_dtype(dtype);
        if (decode_kv_len < 0)
            fail(TUNE_ERR_INVALID_ARGUMENT, "decode_kv_len must be >= 0 (0: no attention), got " +
                                                std::to_string(decode_kv_len));
        const tune::ModelShape model = tune::load_model_config(config_path);
        const std::vector<std::int64_t> counts(tokens, tokens + n_tokens);
        auto problems = tune::layer_gemms(model, counts, dt);
        for (auto& s : tune::layer_swiglu(model, counts, dt)) problems.push_back(std::move(s));
        if (decode_kv_len > 0)
            for (auto& a : tune::layer_attention(model, counts, decode_kv_len)) problems.push_back(std::move(a));
        // Filled into a local array first: a failure leaves the caller's array as it was.
        std::vector<tune_model_problem> filled(std::min(capacity, problems.size()));
        for (std::size_t i = 0; i < filled.size(); ++i) {
            const tune::NamedProblem& np = problems[i];
            tune_model_problem& r = filled[i];
            copy_text(r.name, np.name, "problem name");
            r.tokens = np.tokens;
            r.gemm = tune_gemm_desc_init(0, 0, 0);
            r.attention = tune_attention_desc_init(0, 0, 0, 0, 0, 0);
            r.swiglu = tune_swiglu_desc_init(0, 0, 0);
            if (np.problem.op == tune::OpKind::swiglu) {
                r.op = TUNE_OP_SWIGLU;
                r.swiglu = tune_swiglu_desc_init(np.problem.dims[0], np.problem.dims[1], np.problem.dims[2]);
                r.swiglu.dtype = to_c(np.problem.dtype);
            } else if (np.problem.op == tune::OpKind::gemm) {
                const tune::GemmDims g = tune::gemm_dims(np.problem);
                r.op = TUNE_OP_GEMM;
                r.gemm = tune_gemm_desc_init(g.m, g.n, g.k);
                r.gemm.batch = g.batch;
                r.gemm.trans_a = g.trans_a;
                r.gemm.trans_b = g.trans_b;
                r.gemm.dtype = to_c(np.problem.dtype);
            } else {
                const tune::AttentionDims a = tune::attention_dims(np.problem);
                r.op = TUNE_OP_ATTENTION;
                r.attention = tune_attention_desc_init(a.batch, a.heads, a.kv_heads, a.q_len, a.kv_len, a.head_dim);
                r.attention.causal = a.causal;
                r.attention.window = a.window;
                r.attention.scale = np.problem.scale;  // 0: the default 1/sqrt(head_dim)
            }
        }
        std::copy(filled.begin(), filled.end(), out);
        *count = problems.size();
    });
}

}  // extern "C"
