/* libtune C API: a stable C interface for runtimes written in other languages (C, Rust, Go,
 * Python ctypes, ...). Opaque handles, int status codes and a thread-local last-error message;
 * no C++ type crosses this boundary and no exception escapes it.
 *
 *   tune_dispatcher* d = NULL;
 *   if (tune_dispatcher_open("tuned.db", NULL, &d) != TUNE_OK) fprintf(stderr, "%s\n", tune_last_error());
 *   tune_gemm_desc g = tune_gemm_desc_init(m, n, k);  g.trans_b = 1;
 *   tune_gemm(d, &g, a, b, NULL, NULL, c);
 *   tune_attention_desc at = tune_attention_desc_init(1, 32, 8, 1, 4096, 128);  at.causal = 1;
 *   tune_attention(d, &at, q, k, v, o, NULL);
 *   tune_dispatcher_close(d);
 */
#ifndef LIBTUNE_C_API_H
#define LIBTUNE_C_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change of this header; compare with tune_c_api_version(). */
#define TUNE_C_API_VERSION 2

typedef enum tune_status {
    TUNE_OK = 0,
    TUNE_ERR_INVALID_ARGUMENT = 1, /* null handle/pointer, bad dims, unknown name or flag */
    TUNE_ERR_DATABASE = 2,         /* store missing, unreadable, not a libtune DB, or write failed */
    TUNE_ERR_UNSUPPORTED = 3,      /* no template on this device computes the problem */
    TUNE_ERR_RUNTIME = 4,          /* a kernel or tuning step failed */
    TUNE_ERR_NO_RESULT = 5,        /* tuning finished without a correct candidate */
    TUNE_ERR_OUT_OF_MEMORY = 6,
    TUNE_ERR_INTERNAL = 7          /* unexpected failure; the message says what */
} tune_status;

/* Enums a caller passes in are read as int by the library: a value outside the list is an
 * error (TUNE_ERR_INVALID_ARGUMENT), not undefined behaviour. */
#ifdef __cplusplus
#define TUNE_INPUT_ENUM(name) enum name : int
#else
#define TUNE_INPUT_ENUM(name) enum name
#endif
typedef TUNE_INPUT_ENUM(tune_dtype) { TUNE_F32 = 0, TUNE_BF16 = 1 } tune_dtype;
typedef TUNE_INPUT_ENUM(tune_activation) { TUNE_ACT_NONE = 0, TUNE_ACT_GELU = 1, TUNE_ACT_SILU = 2 } tune_activation;
/* Why the dispatcher chose a config: tuned for this shape, closest tuned shape, template default,
 * shape bucket, or the store's cost model. */
typedef enum tune_source {
    TUNE_SOURCE_EXACT = 0,
    TUNE_SOURCE_NEAREST = 1,
    TUNE_SOURCE_DEFAULT = 2,
    TUNE_SOURCE_BUCKET = 3,   /* its shape bucket's representative was tuned (buckets stored in the DB) */
    TUNE_SOURCE_PREDICTED = 4 /* the DB's cost model ranked tuned neighbours' configs and the default */
} tune_source;

/* Message of the last failed call on this thread ("" when none). Valid until this thread's
 * next libtune call. */
const char* tune_last_error(void);
const char* tune_status_name(int status);
/* Library version ("0.1.0") and the C API version it implements (TUNE_C_API_VERSION). */
const char* tune_version(void);
int tune_c_api_version(void);

/* One GEMM: C[m x n] = act(op(A) op(B) + bias[n]) + residual[m x n], row-major, `batch`
 * independent products. trans_a: A is stored k x m; trans_b: B is stored n x k (PyTorch
 * Linear weights). dtype TUNE_BF16: A and B hold bf16 (uint16_t bits); bias, residual and C
 * are always float. tolerance: largest error accepted (0 = what the dtype implies). */
typedef struct tune_gemm_desc {
    int64_t batch, m, n, k;
    int trans_a, trans_b;
    tune_dtype dtype;
    int bias, residual;
    tune_activation act;
    double tolerance;
} tune_gemm_desc;

/* A desc with batch 1, f32, no transposes, no epilogue. */
tune_gemm_desc tune_gemm_desc_init(int64_t m, int64_t n, int64_t k);

/* ---- Runtime: a dispatcher serves tuned configs from SQLite stores, opened read-only. ---- */
typedef struct tune_dispatcher tune_dispatcher;

/* Opens a system store and, when user_db is non-NULL, a user store whose entries override it.
 * Both are opened read-only and loaded once. system_db NULL (and user_db NULL): no store,
 * every shape gets its template's default config. *out is set only on success. */
int tune_dispatcher_open(const char* system_db, const char* user_db, tune_dispatcher** out);
void tune_dispatcher_close(tune_dispatcher* d); /* NULL is a no-op */
/* Tuned shapes served, and rows not served (stale template version or invalid config). */
int tune_dispatcher_stats(const tune_dispatcher* d, size_t* entries, size_t* stale, size_t* rejected);

typedef struct tune_selection {
    const char* template_name; /* e.g. "cpu.gemm.blocked" */
    const char* config;        /* canonical config text, e.g. "tile_m=... kc=..." */
    const char* store;         /* path of the store that answered (exact/nearest); "" for default */
    tune_source source;
    double tuned_median_s;     /* measured time on the tuned shape; 0 for default */
} tune_selection;
/* The strings stay valid until tune_dispatcher_close(d). Thread-safe. */
int tune_lookup_gemm(const tune_dispatcher* d, const tune_gemm_desc* g, tune_selection* out);

/* Runs the GEMM with the selected config (the kernel is built once per shape, then cached).
 * bias must be non-NULL exactly when g->bias, residual exactly when g->residual. C must not
 * share memory with any input, the residual included (TUNE_ERR_INVALID_ARGUMENT). Thread-safe. */
int tune_gemm(const tune_dispatcher* d, const tune_gemm_desc* g, const void* a, const void* b,
              const float* bias, const float* residual, float* c);

/* ---- Tuning: measure candidates for one problem into a SQLite store (created if absent). ---- */
typedef struct tune_tune_options {
    size_t budget;         /* candidates measured, all templates together (default 24) */
    double time_limit_s;   /* wall-clock limit; 0 = none (default 60) */
    uint64_t seed;         /* search seed: runs are reproducible (default 0) */
    const char* strategy;  /* "annealing" (default when NULL), "random", "exhaustive" */
    int isolate;           /* 1: measure in a forked worker process, so a crashing candidate
                              costs only itself (default 0: in this process) */
} tune_tune_options;
tune_tune_options tune_tune_options_init(void);

typedef struct tune_tune_result {
    int found;                  /* 1 when a correct candidate was measured */
    char template_name[128];
    char config[1024];
    double median_s, gflops;    /* of the best candidate */
    double default_median_s;    /* own template's default config; 0 if not measured */
    size_t measured, reused, failed;
} tune_tune_result;
/* `out` may be NULL. Re-running resumes: what the store holds is reused, never re-measured. */
int tune_tune_gemm(const char* db_path, const tune_gemm_desc* g, const tune_tune_options* options,
                   tune_tune_result* out);

/* ---- SwiGLU (gated MLP): out[m x n] = silu(x W_gate^T) * (x W_up^T), row-major. x is m x k,
 * both weights n x k (PyTorch Linear), out float. dtype TUNE_BF16: x and the weights hold bf16
 * (uint16_t bits). tolerance as in tune_gemm_desc (> 0 lets f32 problems be computed in bf16
 * within it). The fused kernel computes the gate and up tiles from one pass over x and never
 * writes either to memory; the tuner also measures two GEMMs and an elementwise pass. ---- */
typedef struct tune_swiglu_desc {
    int64_t m, n, k;
    tune_dtype dtype;
    double tolerance;
} tune_swiglu_desc;

/* A desc with f32 operands and the dtype's exact tolerance. */
tune_swiglu_desc tune_swiglu_desc_init(int64_t m, int64_t n, int64_t k);
/* The config the dispatcher runs for this SwiGLU problem (see tune_lookup_gemm). */
int tune_lookup_swiglu(const tune_dispatcher* d, const tune_swiglu_desc* s, tune_selection* out);
/* Runs it with the selected config (built once per shape, then cached); out must not share
 * memory with an input (TUNE_ERR_INVALID_ARGUMENT). Thread-safe. */
int tune_swiglu(const tune_dispatcher* d, const tune_swiglu_desc* s, const void* x, const void* w_gate,
                const void* w_up, float* out);
/* Measures candidates for one SwiGLU problem into a SQLite store (see tune_tune_gemm). */
int tune_tune_swiglu(const char* db_path, const tune_swiglu_desc* s, const tune_tune_options* options,
                     tune_tune_result* out);

/* ---- Attention: O = softmax(scale Q K^T + mask) V per (batch, query head), f32 operands. ----
 * scale: the factor on Q K^T; 0 means 1/sqrt(head_dim).
 * Row-major: Q [batch, heads, q_len, head_dim], K and V [batch, kv_heads, kv_len, head_dim],
 * O like Q, LSE [batch, heads, q_len] (natural log of each row's softmax denominator; -inf for
 * a row that sees no key, whose O row is 0). Query head h reads kv head h / (heads / kv_heads)
 * (GQA; MQA when kv_heads = 1); query i sits at key position i + kv_len - q_len. causal keeps
 * keys at or before the query's position; window w > 0 keeps keys less than w positions before
 * it (and, without causal, after it). tolerance > 0 lets the tuner pick reduced-precision
 * candidates within that relative error. */
typedef struct tune_attention_desc {
    int64_t batch, heads, kv_heads, q_len, kv_len, head_dim;
    int causal;
    int64_t window;   /* 0 = no sliding window */
    int backward;     /* 1: the gradients problem (tune_attention_backward) instead of the forward */
    double tolerance; /* 0 = f32 exact semantics */
    double scale;     /* softmax scale; 0 = 1/sqrt(head_dim), else finite and > 0 */
} tune_attention_desc;

/* A forward desc without masks. */
tune_attention_desc tune_attention_desc_init(int64_t batch, int64_t heads, int64_t kv_heads, int64_t q_len,
                                             int64_t kv_len, int64_t head_dim);

/* The config the dispatcher runs for this attention problem (see tune_lookup_gemm). */
int tune_lookup_attention(const tune_dispatcher* d, const tune_attention_desc* a, tune_selection* out);

/* Forward (a->backward must be 0). lse may be NULL when the caller does not need it (a
 * per-thread scratch buffer takes it). Thread-safe. */
int tune_attention(const tune_dispatcher* d, const tune_attention_desc* a, const float* q, const float* k,
                   const float* v, float* o, float* lse);

/* Backward (a->backward must be 1): from the forward's Q, K, V, O, LSE and dO, writes dQ, dK,
 * dV in the layouts of Q, K, V (dK and dV sum over each KV head's group of query heads). */
int tune_attention_backward(const tune_dispatcher* d, const tune_attention_desc* a, const float* q, const float* k,
                            const float* v, const float* o, const float* lse, const float* d_o, float* dq, float* dk,
                            float* dv);

/* Measures candidates for one attention problem into a SQLite store (see tune_tune_gemm). */
int tune_tune_attention(const char* db_path, const tune_attention_desc* a, const tune_tune_options* options,
                        tune_tune_result* out);

/* The forward with Q, K and V in bf16 (uint16_t bits, e.g. a bf16 KV cache; O and LSE float):
 * its own problem (tuned and stored apart from the f32 one), looked up, run and tuned like it.
 * a->backward must be 0. */
int tune_lookup_attention_bf16(const tune_dispatcher* d, const tune_attention_desc* a, tune_selection* out);
int tune_attention_bf16(const tune_dispatcher* d, const tune_attention_desc* a, const uint16_t* q, const uint16_t* k,
                        const uint16_t* v, float* o, float* lse);
int tune_tune_attention_bf16(const char* db_path, const tune_attention_desc* a, const tune_tune_options* options,
                             tune_tune_result* out);

/* The forward on a paged KV cache, as serving engines keep one: K and V are pools of pool_pages
 * pages of `page` keys, each page [page][kv_heads][head_dim]; block_table [batch][ceil(kv_len /
 * page)] (int32) lists each sequence's pages in key order. Every entry must be in [0,
 * pool_pages): the table is checked before anything is read. `page` is part of the problem
 * (look up and tune with the cache's own); `bf16`: Q, K and V hold bf16 (uint16_t bits), else
 * f32. Tuning measures on a pool of exactly the pages the batch needs, in a shuffled order.
 * a->backward must be 0. */
int tune_lookup_attention_paged(const tune_dispatcher* d, const tune_attention_desc* a, int64_t page, int bf16,
                                tune_selection* out);
int tune_attention_paged(const tune_dispatcher* d, const tune_attention_desc* a, int64_t page, int64_t pool_pages,
                         const float* q, const float* k_pool, const float* v_pool, const int32_t* block_table, float* o,
                         float* lse);
int tune_attention_paged_bf16(const tune_dispatcher* d, const tune_attention_desc* a, int64_t page, int64_t pool_pages,
                              const uint16_t* q, const uint16_t* k_pool, const uint16_t* v_pool,
                              const int32_t* block_table, float* o, float* lse);
int tune_tune_attention_paged(const char* db_path, const tune_attention_desc* a, int64_t page, int bf16,
                              const tune_tune_options* options, tune_tune_result* out);

/* ---- Models: one transformer layer's problems, derived from a Hugging Face config.json ---- */
typedef enum tune_op { TUNE_OP_GEMM = 0, TUNE_OP_ATTENTION = 1, TUNE_OP_SWIGLU = 2 } tune_op;
typedef struct tune_model_problem {
    char name[32];  /* "qkv_proj", "o_proj", "mlp_gate_up", "mlp_swiglu", "attention_decode", ... */
    int64_t tokens; /* the token count it was derived for (1 for the decode step) */
    tune_op op;     /* which of the three descs holds the problem (the others are zeroed) */
    tune_gemm_desc gemm;
    tune_attention_desc attention;
    tune_swiglu_desc swiglu;
} tune_model_problem;

/* The problems `tune model` derives from config_path for tokens[0 .. n_tokens): the layer's
 * GEMMs (weights [out, in]: trans_b = 1; dense MLP or mixture-of-experts projections) in
 * `dtype`, its gated MLPs as fused SwiGLU problems in `dtype` when the MLP is SwiGLU ("mlp_swiglu",
 * "expert_swiglu", "shared_expert_swiglu"), then, when decode_kv_len > 0, its attention (f32: prefill per token count > 1, one
 * decode step against decode_kv_len cached keys, windowed and encoder variants as the model has
 * them). Writes the first min(capacity, total) to out (NULL allowed when capacity is 0) and the
 * total to *count: call once with capacity 0 to size the array. */
int tune_model_problems(const char* config_path, const int64_t* tokens, size_t n_tokens, int64_t decode_kv_len,
                        tune_dtype dtype, tune_model_problem* out, size_t capacity, size_t* count);

#ifdef __cplusplus
}
#endif

#endif /* LIBTUNE_C_API_H */
