/* The C API from C: tunes a small GEMM, a SwiGLU and an attention problem into a scratch store, serves
 * them through a dispatcher, checks results against naive C references (attention forward and
 * gradients in double), and checks the error paths.
 *   c_api_test SCRATCH_DIR */
#define _POSIX_C_SOURCE 200112L /* setenv */
#include <tune/c_api.h>
#include <sqlite3.h>

#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n",      \
                    __FILE__, __LINE__, #cond, tune_last_error());             \
            ++failures;                                                        \
        }                                                                      \
    } while (0)

static float frand(unsigned* state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* bf16 bits of x (round to nearest even), and back. */
static uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
static float from_bf16(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* C = A B^T (+ bias) with A m x k and B n x k, in double; returns max |C - ref| / (|A||B|). */
static double gemm_error(const float* a, const float* b, const float* bias, const float* c, int64_t m, int64_t n,
                         int64_t k) {
    double worst = 0;
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double ref = bias ? bias[j] : 0, scale = 0;
            for (int64_t p = 0; p < k; ++p) {
                ref += (double)a[i * k + p] * b[j * k + p];
                scale += fabs((double)a[i * k + p] * b[j * k + p]);
            }
            double err = fabs(c[i * n + j] - ref) / (scale > 0 ? scale : 1);
            if (err > worst) worst = err;
        }
    return worst;
}

static float* random_floats(size_t count, unsigned seed) {
    float* x = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; ++i) x[i] = frand(&seed);
    return x;
}

static void check_run(tune_dispatcher* d, int64_t m, int64_t n, int64_t k, tune_source expect) {
    tune_gemm_desc g = tune_gemm_desc_init(m, n, k);
    g.trans_b = 1;
    tune_selection s;
    CHECK(tune_lookup_gemm(d, &g, &s) == TUNE_OK);
    CHECK(s.source == expect);
    CHECK(s.template_name && strncmp(s.template_name, "cpu.gemm.", 9) == 0);
    CHECK(s.config != NULL);
    printf("%lld x %lld x %lld: %s %s [%s]\n", (long long)m, (long long)n, (long long)k, s.template_name, s.config,
           s.source == TUNE_SOURCE_EXACT ? "exact" : s.source == TUNE_SOURCE_NEAREST ? "nearest" : "default");

    float *a = random_floats((size_t)(m * k), 1), *b = random_floats((size_t)(n * k), 2);
    float* c = calloc((size_t)(m * n), sizeof(float));
    CHECK(tune_gemm(d, &g, a, b, NULL, NULL, c) == TUNE_OK);
    double err = gemm_error(a, b, NULL, c, m, n, k);
    CHECK(err < 1e-5);

    /* Epilogue: C = A B^T + bias. */
    float* bias = random_floats((size_t)n, 3);
    g.bias = 1;
    CHECK(tune_gemm(d, &g, a, b, bias, NULL, c) == TUNE_OK);
    CHECK(gemm_error(a, b, bias, c, m, n, k) < 1e-5);
    /* An output sharing memory with an input is refused (the product is stored before the
     * epilogue reads the residual): in place, C over A, C over the end of B. */
    g.bias = 0;
    g.residual = 1;
    CHECK(tune_gemm(d, &g, a, b, NULL, c, c) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "output C overlaps input residual") != NULL);
    g.residual = 0;
    CHECK(tune_gemm(d, &g, a, b, NULL, NULL, a) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "overlaps input A") != NULL);
    CHECK(tune_gemm(d, &g, a, b, NULL, NULL, b + n * k - 1) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_gemm(d, &g, a, b, NULL, NULL, c) == TUNE_OK); /* separate buffers still run */
    free(a), free(b), free(c), free(bias);
}

static void check_bf16(tune_dispatcher* d) {
    const int64_t m = 24, n = 40, k = 64;
    tune_gemm_desc g = tune_gemm_desc_init(m, n, k);
    g.trans_b = 1;
    g.dtype = TUNE_BF16;
    tune_selection s;
    int rc = tune_lookup_gemm(d, &g, &s);
    if (rc == TUNE_ERR_UNSUPPORTED) {
        printf("bf16: not supported on this CPU (%s)\n", tune_last_error());
        return;
    }
    CHECK(rc == TUNE_OK);
    float *af = random_floats((size_t)(m * k), 4), *bf = random_floats((size_t)(n * k), 5);
    uint16_t* a = malloc((size_t)(m * k) * 2);
    uint16_t* b = malloc((size_t)(n * k) * 2);
    for (int64_t i = 0; i < m * k; ++i) af[i] = from_bf16(a[i] = to_bf16(af[i]));
    for (int64_t i = 0; i < n * k; ++i) bf[i] = from_bf16(b[i] = to_bf16(bf[i]));
    float* c = calloc((size_t)(m * n), sizeof(float));
    CHECK(tune_gemm(d, &g, a, b, NULL, NULL, c) == TUNE_OK);
    /* Inputs are exact bf16 values and accumulation is f32: f32 accuracy against them. */
    CHECK(gemm_error(af, bf, NULL, c, m, n, k) < 1e-5);
    printf("bf16 %lld x %lld x %lld: %s ok\n", (long long)m, (long long)n, (long long)k, s.template_name);
    free(af), free(bf), free(a), free(b), free(c);
}

/* ---- Attention ---- */

/* The keys query i sees, [*first, *last): the masks of tune/c_api.h. */
/* out = silu(x Wg^T) * (x Wu^T) in double; returns max |out - ref| / scale, the scale summing
 * what each term contributes (as the library's own metric): |silu'| <= 1.1 times |up| |x||Wg|, plus
 * |silu(g)| |x||Wu|, plus |ref|. */
static double swiglu_error(const float* x, const float* wg, const float* wu, const float* out, int64_t m, int64_t n,
                           int64_t k) {
    double worst = 0;
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double g = 0, u = 0, sg = 0, su = 0;
            for (int64_t p = 0; p < k; ++p) {
                g += (double)x[i * k + p] * wg[j * k + p];
                u += (double)x[i * k + p] * wu[j * k + p];
                sg += fabs((double)x[i * k + p] * wg[j * k + p]);
                su += fabs((double)x[i * k + p] * wu[j * k + p]);
            }
            const double act = g / (1 + exp(-g)), ref = act * u;
            const double scale = 1.1 * fabs(u) * sg + fabs(act) * su + fabs(ref);
            const double err = fabs(out[i * n + j] - ref) / (scale > 0 ? scale : 1);
            if (err > worst) worst = err;
        }
    return worst;
}

/* A SwiGLU problem through the dispatcher, f32 and bf16 operands, against the double reference. */
static void check_swiglu(tune_dispatcher* d, int64_t m, int64_t n, int64_t k, tune_source expect) {
    tune_swiglu_desc sd = tune_swiglu_desc_init(m, n, k);
    tune_selection s;
    CHECK(tune_lookup_swiglu(d, &sd, &s) == TUNE_OK);
    CHECK(s.source == expect && strcmp(s.template_name, "cpu.swiglu.blocked") == 0);
    float* x = random_floats((size_t)(m * k), 11);
    float* wg = random_floats((size_t)(n * k), 12);
    float* wu = random_floats((size_t)(n * k), 13);
    float* out = malloc((size_t)(m * n) * sizeof(float));
    CHECK(tune_swiglu(d, &sd, x, wg, wu, out) == TUNE_OK);
    double err = swiglu_error(x, wg, wu, out, m, n, k);
    CHECK(err < 1e-5);
    printf("swiglu %lldx%lldx%lld via %s (%s): error %.2g\n", (long long)m, (long long)n, (long long)k, s.config,
           s.source == TUNE_SOURCE_EXACT ? "exact" : "other", err);
    /* bf16 operands: the reference takes the rounded values, so only f32 accumulation error remains. */
    uint16_t* xb = malloc((size_t)(m * k) * 2);
    uint16_t* gb = malloc((size_t)(n * k) * 2);
    uint16_t* ub = malloc((size_t)(n * k) * 2);
    for (int64_t i = 0; i < m * k; ++i) x[i] = from_bf16(xb[i] = to_bf16(x[i]));
    for (int64_t i = 0; i < n * k; ++i) {
        wg[i] = from_bf16(gb[i] = to_bf16(wg[i]));
        wu[i] = from_bf16(ub[i] = to_bf16(wu[i]));
    }
    sd.dtype = TUNE_BF16;
    int rc = tune_swiglu(d, &sd, xb, gb, ub, out);
    CHECK(rc == TUNE_OK || rc == TUNE_ERR_UNSUPPORTED); /* a CPU without AVX512-BF16 */
    if (rc == TUNE_OK) CHECK(swiglu_error(x, wg, wu, out, m, n, k) < 1e-5);
    /* Error paths: a NULL operand, a bad dtype, a bad size, a tolerance out of range. */
    CHECK(tune_swiglu(d, &sd, xb, NULL, ub, out) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "w_gate") != NULL);
    CHECK(tune_swiglu(d, &sd, xb, gb, ub, (float*)gb) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "output out overlaps input w_gate") != NULL);
    sd.dtype = (tune_dtype)5;
    CHECK(tune_swiglu(d, &sd, x, wg, wu, out) == TUNE_ERR_INVALID_ARGUMENT);
    sd = tune_swiglu_desc_init(m, 0, k);
    CHECK(tune_swiglu(d, &sd, x, wg, wu, out) == TUNE_ERR_INVALID_ARGUMENT);
    sd = tune_swiglu_desc_init(m, n, k);
    sd.tolerance = 2;
    CHECK(tune_lookup_swiglu(d, &sd, &s) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_lookup_swiglu(d, NULL, &s) == TUNE_ERR_INVALID_ARGUMENT);
    free(x), free(wg), free(wu), free(out), free(xb), free(gb), free(ub);
}

static void key_range(const tune_attention_desc* a, int64_t i, int64_t* first, int64_t* last) {
    const int64_t pos = i + a->kv_len - a->q_len;
    *first = 0, *last = a->kv_len;
    if (a->causal && pos + 1 < *last) *last = pos + 1;
    if (a->window > 0) {
        if (pos - a->window + 1 > *first) *first = pos - a->window + 1;
        if (!a->causal && pos + a->window < *last) *last = pos + a->window;
    }
    if (*first > a->kv_len) *first = a->kv_len;
    if (*last < *first) *last = *first;
}

/* Forward in double: o and lse, and optionally the gradients for d_o (dq, dk, dv zeroed here). */
static void attention_reference(const tune_attention_desc* a, const float* q, const float* k, const float* v,
                                double* o, double* lse, const float* d_o, double* dq, double* dk, double* dv) {
    const int64_t hd = a->head_dim, group = a->heads / a->kv_heads;
    const double scale = a->scale != 0 ? a->scale : 1.0 / sqrt((double)hd);
    double* p = malloc((size_t)a->kv_len * sizeof(double));
    if (dq) {
        memset(dq, 0, (size_t)(a->batch * a->heads * a->q_len * hd) * sizeof(double));
        memset(dk, 0, (size_t)(a->batch * a->kv_heads * a->kv_len * hd) * sizeof(double));
        memset(dv, 0, (size_t)(a->batch * a->kv_heads * a->kv_len * hd) * sizeof(double));
    }
    for (int64_t b = 0; b < a->batch; ++b)
        for (int64_t h = 0; h < a->heads; ++h)
            for (int64_t i = 0; i < a->q_len; ++i) {
                const int64_t row = (b * a->heads + h) * a->q_len + i, kvh = b * a->kv_heads + h / group;
                const float* qi = q + row * hd;
                double* oi = o + row * hd;
                int64_t first, last;
                key_range(a, i, &first, &last);
                double mx = -INFINITY, sum = 0;
                for (int64_t j = first; j < last; ++j) {
                    double s = 0;
                    for (int64_t d = 0; d < hd; ++d) s += (double)qi[d] * k[(kvh * a->kv_len + j) * hd + d];
                    p[j] = s * scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (int64_t d = 0; d < hd; ++d) oi[d] = 0;
                if (first == last) {
                    lse[row] = -INFINITY;
                    continue;
                }
                for (int64_t j = first; j < last; ++j) sum += exp(p[j] - mx);
                lse[row] = mx + log(sum);
                for (int64_t j = first; j < last; ++j) {
                    p[j] = exp(p[j] - lse[row]);
                    for (int64_t d = 0; d < hd; ++d) oi[d] += p[j] * v[(kvh * a->kv_len + j) * hd + d];
                }
                if (!dq) continue;
                const float* doi = d_o + row * hd;
                double di = 0;
                for (int64_t d = 0; d < hd; ++d) di += (double)doi[d] * oi[d];
                for (int64_t j = first; j < last; ++j) {
                    const int64_t kj = (kvh * a->kv_len + j) * hd;
                    double dp = 0;
                    for (int64_t d = 0; d < hd; ++d) dp += (double)doi[d] * v[kj + d];
                    const double ds = p[j] * (dp - di) * scale;
                    for (int64_t d = 0; d < hd; ++d) {
                        dq[row * hd + d] += ds * k[kj + d];
                        dk[kj + d] += ds * qi[d];
                        dv[kj + d] += p[j] * doi[d];
                    }
                }
            }
    free(p);
}

/* max |x - ref| / max(1, max |ref|), over finite references; -inf references must match. */
static double max_error(const float* x, const double* ref, size_t n) {
    double worst = 0, peak = 1;
    for (size_t i = 0; i < n; ++i)
        if (isfinite(ref[i]) && fabs(ref[i]) > peak) peak = fabs(ref[i]);
    for (size_t i = 0; i < n; ++i) {
        if (!isfinite(ref[i])) {
            if (x[i] != ref[i]) return INFINITY;
            continue;
        }
        double e = fabs(x[i] - ref[i]);
        if (!(e <= worst)) worst = e; /* NaN in x: worst becomes NaN and fails every bound */
    }
    return worst / peak;
}

static void check_attention(tune_dispatcher* d, tune_attention_desc a, int backward) {
    const size_t nq = (size_t)(a.batch * a.heads * a.q_len * a.head_dim);
    const size_t nkv = (size_t)(a.batch * a.kv_heads * a.kv_len * a.head_dim);
    const size_t rows = (size_t)(a.batch * a.heads * a.q_len);
    float *q = random_floats(nq, 11), *k = random_floats(nkv, 12), *v = random_floats(nkv, 13);
    float *o = calloc(nq, sizeof(float)), *lse = calloc(rows, sizeof(float));
    double *o_ref = malloc(nq * sizeof(double)), *lse_ref = malloc(rows * sizeof(double));
    float* d_o = random_floats(nq, 14);
    double *dq_ref = malloc(nq * sizeof(double)), *dk_ref = malloc(nkv * sizeof(double)),
           *dv_ref = malloc(nkv * sizeof(double));
    attention_reference(&a, q, k, v, o_ref, lse_ref, d_o, dq_ref, dk_ref, dv_ref);

    tune_selection s;
    CHECK(tune_lookup_attention(d, &a, &s) == TUNE_OK);
    CHECK(s.template_name && strncmp(s.template_name, "cpu.attention.", 14) == 0);
    CHECK(tune_attention(d, &a, q, k, v, o, lse) == TUNE_OK);
    CHECK(max_error(o, o_ref, nq) < 1e-5);
    CHECK(max_error(lse, lse_ref, rows) < 1e-5);
    /* Without LSE: the same O. */
    float* o2 = calloc(nq, sizeof(float));
    CHECK(tune_attention(d, &a, q, k, v, o2, NULL) == TUNE_OK);
    CHECK(max_error(o2, o_ref, nq) < 1e-5);
    {
        /* The same forward on bf16 Q, K and V: its reference reads the rounded values. */
        uint16_t *q16 = malloc(nq * sizeof(uint16_t)), *k16 = malloc(nkv * sizeof(uint16_t)),
                 *v16 = malloc(nkv * sizeof(uint16_t));
        float *qr = malloc(nq * sizeof(float)), *kr = malloc(nkv * sizeof(float)), *vr = malloc(nkv * sizeof(float));
        for (size_t i = 0; i < nq; ++i) qr[i] = from_bf16(q16[i] = to_bf16(q[i]));
        for (size_t i = 0; i < nkv; ++i) kr[i] = from_bf16(k16[i] = to_bf16(k[i])), vr[i] = from_bf16(v16[i] = to_bf16(v[i]));
        double *o16_ref = malloc(nq * sizeof(double)), *lse16_ref = malloc(rows * sizeof(double));
        attention_reference(&a, qr, kr, vr, o16_ref, lse16_ref, d_o, dq_ref, dk_ref, dv_ref);
        tune_selection s16;
        float* lse16 = calloc(rows, sizeof(float));
        CHECK(tune_lookup_attention_bf16(d, &a, &s16) == TUNE_OK);
        CHECK(tune_attention_bf16(d, &a, q16, k16, v16, o2, lse16) == TUNE_OK);
        CHECK(max_error(o2, o16_ref, nq) < 1e-5);
        CHECK(max_error(lse16, lse16_ref, rows) < 1e-5);
        free(q16), free(k16), free(v16), free(qr), free(kr), free(vr), free(o16_ref), free(lse16_ref), free(lse16);
        /* The gradients below are checked against the f32 inputs' references again. */
        attention_reference(&a, q, k, v, o_ref, lse_ref, d_o, dq_ref, dk_ref, dv_ref);
    }
    printf("attention h%lld/%lld q%lld kv%lld d%lld causal=%d window=%lld scale=%g: %s %s ok\n", (long long)a.heads,
           (long long)a.kv_heads, (long long)a.q_len, (long long)a.kv_len, (long long)a.head_dim, a.causal,
           (long long)a.window, a.scale, s.template_name, s.config);

    if (backward) {
        tune_attention_desc g = a;
        g.backward = 1;
        float *dq = calloc(nq, sizeof(float)), *dk = calloc(nkv, sizeof(float)), *dv = calloc(nkv, sizeof(float));
        CHECK(tune_lookup_attention(d, &g, &s) == TUNE_OK);
        CHECK(tune_attention_backward(d, &g, q, k, v, o, lse, d_o, dq, dk, dv) == TUNE_OK);
        CHECK(max_error(dq, dq_ref, nq) < 1e-4);
        CHECK(max_error(dk, dk_ref, nkv) < 1e-4);
        CHECK(max_error(dv, dv_ref, nkv) < 1e-4);
        printf("attention backward: %s %s ok\n", s.template_name, s.config);
        /* The forward entry point refuses a backward desc and vice versa. */
        CHECK(tune_attention(d, &g, q, k, v, o, lse) == TUNE_ERR_INVALID_ARGUMENT);
        CHECK(tune_attention_backward(d, &a, q, k, v, o, lse, d_o, dq, dk, dv) == TUNE_ERR_INVALID_ARGUMENT);
        CHECK(tune_attention_backward(d, &g, q, k, v, o, NULL, d_o, dq, dk, dv) == TUNE_ERR_INVALID_ARGUMENT);
        free(dq), free(dk), free(dv);
    }
    free(q), free(k), free(v), free(o), free(o2), free(lse), free(o_ref), free(lse_ref), free(d_o);
    free(dq_ref), free(dk_ref), free(dv_ref);
}

/* The forward on a paged cache: K and V scattered over a pool larger than the batch needs (a
 * serving runtime's shared pool) through a block table; the result is the contiguous
 * reference's. `tuned`: the page size was tuned into the store (served exactly). */
static void check_paged(tune_dispatcher* d, tune_attention_desc a, int64_t page, int tuned) {
    const int64_t pages = (a.kv_len + page - 1) / page, pool = a.batch * pages + 5;
    const size_t row = (size_t)a.head_dim, nq = (size_t)(a.batch * a.heads * a.q_len) * row;
    const size_t nkv = (size_t)(a.batch * a.kv_heads * a.kv_len) * row, pool_n = (size_t)(pool * page * a.kv_heads) * row;
    const size_t rows = (size_t)(a.batch * a.heads * a.q_len);
    float *q = random_floats(nq, 21), *k = random_floats(nkv, 22), *v = random_floats(nkv, 23);
    float *kp = calloc(pool_n, sizeof(float)), *vp = calloc(pool_n, sizeof(float));
    uint16_t *q16 = malloc(nq * 2), *kp16 = calloc(pool_n, 2), *vp16 = calloc(pool_n, 2);
    float *kr = malloc(nkv * sizeof(float)), *vr = malloc(nkv * sizeof(float)), *qr = malloc(nq * sizeof(float));
    int32_t* table = malloc((size_t)(a.batch * pages) * sizeof(int32_t));
    for (int64_t i = 0; i < a.batch * pages; ++i) table[i] = (int32_t)((i * 7 + 3) % pool); /* scattered, distinct */
    for (int64_t b = 0; b < a.batch; ++b)
        for (int64_t h = 0; h < a.kv_heads; ++h)
            for (int64_t j = 0; j < a.kv_len; ++j) {
                const size_t from = (size_t)((b * a.kv_heads + h) * a.kv_len + j) * row;
                const size_t to = (size_t)(((int64_t)table[b * pages + j / page] * page + j % page) * a.kv_heads + h) * row;
                for (size_t e = 0; e < row; ++e) {
                    kp[to + e] = k[from + e], vp[to + e] = v[from + e];
                    kr[from + e] = from_bf16(kp16[to + e] = to_bf16(k[from + e]));
                    vr[from + e] = from_bf16(vp16[to + e] = to_bf16(v[from + e]));
                }
            }
    for (size_t i = 0; i < nq; ++i) qr[i] = from_bf16(q16[i] = to_bf16(q[i]));
    float *o = calloc(nq, sizeof(float)), *lse = calloc(rows, sizeof(float));
    double *o_ref = malloc(nq * sizeof(double)), *lse_ref = malloc(rows * sizeof(double));
    attention_reference(&a, q, k, v, o_ref, lse_ref, NULL, NULL, NULL, NULL);
    tune_selection s;
    CHECK(tune_lookup_attention_paged(d, &a, page, 0, &s) == TUNE_OK);
    CHECK(s.source == (tuned ? TUNE_SOURCE_EXACT : TUNE_SOURCE_DEFAULT) || (!tuned && s.source == TUNE_SOURCE_NEAREST));
    CHECK(tune_attention_paged(d, &a, page, pool, q, kp, vp, table, o, lse) == TUNE_OK);
    CHECK(max_error(o, o_ref, nq) < 1e-5);
    CHECK(max_error(lse, lse_ref, rows) < 1e-5);
    attention_reference(&a, qr, kr, vr, o_ref, lse_ref, NULL, NULL, NULL, NULL);
    CHECK(tune_lookup_attention_paged(d, &a, page, 1, &s) == TUNE_OK);
    CHECK(tune_attention_paged_bf16(d, &a, page, pool, q16, kp16, vp16, table, o, NULL) == TUNE_OK);
    CHECK(max_error(o, o_ref, nq) < 1e-5);
    printf("paged attention h%lld/%lld q%lld kv%lld page %lld, pool %lld pages: %s %s ok\n", (long long)a.heads,
           (long long)a.kv_heads, (long long)a.q_len, (long long)a.kv_len, (long long)page, (long long)pool,
           s.template_name, s.config);
    /* A table entry outside the pool is refused before anything is read; so are bad sizes. */
    const int32_t saved = table[1];
    table[1] = (int32_t)pool;
    CHECK(tune_attention_paged(d, &a, page, pool, q, kp, vp, table, o, lse) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "block table entry 1") != NULL);
    table[1] = saved;
    CHECK(tune_attention_paged(d, &a, page, 0, q, kp, vp, table, o, lse) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "pool_pages") != NULL);
    CHECK(tune_attention_paged(d, &a, page, pool, q, kp, vp, NULL, o, lse) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_attention_paged(d, &a, 0, pool, q, kp, vp, table, o, lse) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "page") != NULL);
    tune_attention_desc back = a;
    back.backward = 1;
    CHECK(tune_lookup_attention_paged(d, &back, page, 0, &s) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_lookup_attention_paged(d, &a, page, 2, &s) == TUNE_ERR_INVALID_ARGUMENT);
    free(q), free(k), free(v), free(kp), free(vp), free(q16), free(kp16), free(vp16), free(kr), free(vr), free(qr);
    free(table), free(o), free(lse), free(o_ref), free(lse_ref);
}

static void check_attention_errors(tune_dispatcher* d) {
    tune_selection s;
    tune_attention_desc a = tune_attention_desc_init(1, 6, 4, 8, 8, 16); /* 6 heads over 4 KV heads */
    CHECK(tune_lookup_attention(d, &a, &s) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "kv_heads") != NULL);
    a = tune_attention_desc_init(1, 4, 2, 8, 0, 16);
    CHECK(tune_lookup_attention(d, &a, &s) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "kv_len") != NULL);
    a = tune_attention_desc_init(1, 4, 2, 8, 8, 16);
    a.causal = 3;
    CHECK(tune_lookup_attention(d, &a, &s) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "causal") != NULL);
    a.causal = 1;
    a.tolerance = -1;
    CHECK(tune_lookup_attention(d, &a, &s) == TUNE_ERR_INVALID_ARGUMENT);
    a.tolerance = 0;
    a.scale = -0.5;
    CHECK(tune_lookup_attention(d, &a, &s) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "scale") != NULL);
    a.scale = NAN;
    CHECK(tune_lookup_attention(d, &a, &s) == TUNE_ERR_INVALID_ARGUMENT);
    a.scale = 0;
    float x[512] = {0};
    CHECK(tune_attention(d, &a, x, x, NULL, x, NULL) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_attention(NULL, &a, x, x, x, x, NULL) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_lookup_attention(d, NULL, &s) == TUNE_ERR_INVALID_ARGUMENT);
}

static void check_errors(tune_dispatcher* d, const char* dir) {
    char path[4096];
    tune_dispatcher* none = NULL;

    snprintf(path, sizeof path, "%s/does-not-exist.db", dir);
    CHECK(tune_dispatcher_open(path, NULL, &none) == TUNE_ERR_DATABASE);
    CHECK(none == NULL);
    CHECK(strstr(tune_last_error(), "does-not-exist.db") != NULL);

    snprintf(path, sizeof path, "%s/not-a-db.db", dir);
    FILE* f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) fputs("this is not a SQLite file, just text long enough to fill a header page.......", f), fclose(f);
    CHECK(tune_dispatcher_open(path, NULL, &none) == TUNE_ERR_DATABASE);
    CHECK(tune_last_error()[0] != '\0');

    CHECK(tune_dispatcher_open("", NULL, &none) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_dispatcher_open(NULL, path, &none) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_dispatcher_open(path, NULL, NULL) == TUNE_ERR_INVALID_ARGUMENT);

    /* A thread cap that is not a number: opening a good store and tuning both fail, naming it. */
    char good[4096];
    snprintf(good, sizeof good, "%s/c_api_test.db", dir);
    CHECK(setenv("LIBTUNE_NUM_THREADS", "many", 1) == 0);
    CHECK(tune_dispatcher_open(good, NULL, &none) != TUNE_OK);
    CHECK(none == NULL);
    CHECK(strstr(tune_last_error(), "LIBTUNE_NUM_THREADS='many'") != NULL);
    tune_gemm_desc small = tune_gemm_desc_init(4, 8, 8);
    tune_tune_options few = tune_tune_options_init();
    few.budget = 1;
    tune_tune_result nothing;
    CHECK(tune_tune_gemm(good, &small, &few, &nothing) != TUNE_OK);
    CHECK(strstr(tune_last_error(), "LIBTUNE_NUM_THREADS") != NULL);
    CHECK(unsetenv("LIBTUNE_NUM_THREADS") == 0);
    CHECK(tune_dispatcher_open(good, NULL, &none) == TUNE_OK);
    tune_dispatcher_close(none);
    none = NULL;

    tune_gemm_desc g = tune_gemm_desc_init(0, 16, 16);
    tune_selection s;
    CHECK(tune_lookup_gemm(d, &g, &s) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "dim 'm'") != NULL);
    g = tune_gemm_desc_init(16, -3, 16);
    CHECK(tune_lookup_gemm(d, &g, &s) == TUNE_ERR_INVALID_ARGUMENT);
    g = tune_gemm_desc_init(16, 16, 16);
    g.trans_b = 2;
    CHECK(tune_lookup_gemm(d, &g, &s) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "trans_b") != NULL);
    g = tune_gemm_desc_init(16, 16, 16);
    g.dtype = (tune_dtype)7;
    CHECK(tune_lookup_gemm(d, &g, &s) == TUNE_ERR_INVALID_ARGUMENT);

    g = tune_gemm_desc_init(16, 16, 16);
    float x[256] = {0};
    CHECK(tune_lookup_gemm(NULL, &g, &s) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "NULL") != NULL);
    CHECK(tune_lookup_gemm(d, NULL, &s) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_lookup_gemm(d, &g, NULL) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_gemm(NULL, &g, x, x, NULL, NULL, x) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_gemm(d, &g, NULL, x, NULL, NULL, x) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_gemm(d, &g, x, x, x, NULL, x) == TUNE_ERR_INVALID_ARGUMENT); /* bias without bias=1 */
    CHECK(strstr(tune_last_error(), "bias") != NULL);
    CHECK(tune_dispatcher_stats(NULL, NULL, NULL, NULL) == TUNE_ERR_INVALID_ARGUMENT);
    tune_dispatcher_close(NULL);

    /* A successful call clears the message. */
    CHECK(tune_lookup_gemm(d, &g, &s) == TUNE_OK);
    CHECK(tune_last_error()[0] == '\0');

    tune_tune_options o = tune_tune_options_init();
    o.budget = 0;
    CHECK(tune_tune_gemm(path, &g, &o, NULL) == TUNE_ERR_INVALID_ARGUMENT);
    o = tune_tune_options_init();
    o.strategy = "no-such-strategy";
    snprintf(path, sizeof path, "%s/unused.db", dir);
    remove(path);
    CHECK(tune_tune_gemm(path, &g, &o, NULL) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "no-such-strategy") != NULL);
    CHECK(access(path, F_OK) != 0); /* refused before the store was opened */
    CHECK(tune_tune_gemm(NULL, &g, NULL, NULL) == TUNE_ERR_INVALID_ARGUMENT);

    /* A store that SQLite cannot write as the library needs (here a table dropped behind its
     * back; a locked or full store alike) is a database error, not a runtime one. */
    snprintf(path, sizeof path, "%s/damaged.db", dir);
    remove(path);
    o = tune_tune_options_init();
    o.budget = 1;
    CHECK(tune_tune_gemm(path, &small, &o, NULL) == TUNE_OK);
    sqlite3* raw = NULL;
    CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
    CHECK(sqlite3_exec(raw, "DROP TABLE runs", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(raw);
    CHECK(tune_tune_gemm(path, &g, &o, NULL) == TUNE_ERR_DATABASE);
    CHECK(strstr(tune_last_error(), "runs") != NULL);
}

/* A layer's problems from a config.json: sized with capacity 0, then filled; bad input refused. */
static void check_model_problems(const char* scratch) {
    char path[4096];
    snprintf(path, sizeof path, "%s/c_api_model.json", scratch);
    FILE* f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"hidden_size\": 64, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"intermediate_size\": 96,"
          " \"hidden_act\": \"silu\", \"num_local_experts\": 4, \"num_experts_per_tok\": 2,"
          " \"query_pre_attn_scalar\": 16}",
          f);
    fclose(f);
    const int64_t tokens[] = {1, 8};
    size_t count = 99;
    CHECK(tune_model_problems(path, tokens, 2, 32, TUNE_F32, NULL, 0, &count) == TUNE_OK);
    /* 5 GEMMs per token count (qkv, o, router, expert gate_up, down), one expert SwiGLU per
     * token count, prefill, decode */
    CHECK(count == 14);
    tune_model_problem p[14];
    size_t filled = 0;
    CHECK(tune_model_problems(path, tokens, 2, 32, TUNE_BF16, p, 14, &filled) == TUNE_OK && filled == 14);
    CHECK(strcmp(p[0].name, "qkv_proj") == 0 && p[0].op == TUNE_OP_GEMM);
    CHECK(p[0].gemm.m == 1 && p[0].gemm.n == 128 && p[0].gemm.k == 64 && p[0].gemm.trans_b == 1);
    CHECK(p[0].gemm.dtype == TUNE_BF16);
    CHECK(strcmp(p[2].name, "moe_router") == 0 && p[2].gemm.n == 4);
    CHECK(strcmp(p[8].name, "expert_gate_up") == 0 && p[8].tokens == 8 && p[8].gemm.m == 4 && p[8].gemm.n == 96);
    CHECK(p[8].swiglu.m == 0 && p[8].attention.heads == 0); /* the descs a problem does not use are zeroed */
    CHECK(strcmp(p[11].name, "expert_swiglu") == 0 && p[11].op == TUNE_OP_SWIGLU && p[11].tokens == 8);
    CHECK(p[11].swiglu.m == 4 && p[11].swiglu.n == 96 && p[11].swiglu.k == 64 && p[11].swiglu.dtype == TUNE_BF16);
    CHECK(p[11].gemm.m == 0);
    CHECK(strcmp(p[12].name, "attention_prefill") == 0 && p[12].op == TUNE_OP_ATTENTION);
    CHECK(p[12].attention.q_len == 8 && p[12].attention.kv_len == 8 && p[12].attention.causal == 1);
    CHECK(p[12].attention.heads == 4 && p[12].attention.kv_heads == 2 && p[12].attention.head_dim == 16);
    CHECK(p[12].attention.scale == 0.25); /* query_pre_attn_scalar 16 */
    CHECK(strcmp(p[13].name, "attention_decode") == 0 && p[13].attention.q_len == 1 && p[13].attention.kv_len == 32);
    /* A smaller array takes the first problems; the count is still the total. */
    tune_model_problem two[2];
    CHECK(tune_model_problems(path, tokens, 2, 0, TUNE_F32, two, 2, &count) == TUNE_OK && count == 12);
    CHECK(strcmp(two[1].name, "o_proj") == 0);

    CHECK(tune_model_problems(path, tokens, 2, 32, TUNE_F32, NULL, 0, NULL) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_model_problems(path, tokens, 0, 32, TUNE_F32, NULL, 0, &count) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tune_last_error(), "tokens") != NULL);
    CHECK(tune_model_problems(path, tokens, 2, 32, TUNE_F32, NULL, 3, &count) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_model_problems(path, tokens, 2, -1, TUNE_F32, NULL, 0, &count) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_model_problems(path, tokens, 2, 32, (tune_dtype)7, NULL, 0, &count) == TUNE_ERR_INVALID_ARGUMENT);
    CHECK(tune_model_problems("/nonexistent/config.json", tokens, 2, 32, TUNE_F32, NULL, 0, &count) ==
          TUNE_ERR_INVALID_ARGUMENT);
    CHECK(count == 0 && strstr(tune_last_error(), "/nonexistent/config.json") != NULL);
    const int64_t zero[] = {0};
    CHECK(tune_model_problems(path, zero, 1, 32, TUNE_F32, NULL, 0, &count) == TUNE_ERR_INVALID_ARGUMENT);
    remove(path);
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    CHECK(tune_c_api_version() == TUNE_C_API_VERSION);
    CHECK(strlen(tune_version()) > 0);
    printf("libtune %s, C API %d\n", tune_version(), tune_c_api_version());

    char db[4096];
    snprintf(db, sizeof db, "%s/c_api_test.db", argv[1]);
    remove(db);
    tune_gemm_desc g = tune_gemm_desc_init(32, 64, 48);
    g.trans_b = 1;
    tune_tune_options o = tune_tune_options_init();
    o.budget = 4;
    o.time_limit_s = 30;
    o.seed = 7;
    tune_tune_result r;
    CHECK(tune_tune_gemm(db, &g, &o, &r) == TUNE_OK);
    CHECK(r.found == 1 && r.median_s > 0 && r.gflops > 0 && r.measured >= 1);
    printf("tuned: %s %s %.3g s (%zu measured)\n", r.template_name, r.config, r.median_s, r.measured);
    /* Resumes: the same request measures nothing new. */
    tune_tune_result again;
    CHECK(tune_tune_gemm(db, &g, &o, &again) == TUNE_OK);
    CHECK(again.measured == 0 && again.reused >= 1);

    /* Attention: tuned into the same store, then served exactly; untuned masks from defaults. */
    tune_attention_desc at = tune_attention_desc_init(1, 4, 2, 7, 13, 16);
    at.causal = 1;
    tune_tune_result ar;
    CHECK(tune_tune_attention(db, &at, &o, &ar) == TUNE_OK);
    CHECK(ar.found == 1 && strncmp(ar.template_name, "cpu.attention.", 14) == 0);
    tune_tune_result ar16; /* the same shape on bf16 Q, K, V: a problem of its own */
    CHECK(tune_tune_attention_bf16(db, &at, &o, &ar16) == TUNE_OK);
    CHECK(ar16.found == 1 && ar16.measured >= 1 && strcmp(ar16.template_name, "cpu.attention.fused") == 0);
    printf("tuned attention: %s %s %.3g s (%zu measured)\n", ar.template_name, ar.config, ar.median_s, ar.measured);
    tune_attention_desc paged = tune_attention_desc_init(2, 8, 2, 1, 45, 32); /* a decode step, pages of 16 */
    paged.causal = 1;
    tune_tune_result pr;
    CHECK(tune_tune_attention_paged(db, &paged, 16, 0, &o, &pr) == TUNE_OK);
    CHECK(pr.found == 1 && strcmp(pr.template_name, "cpu.attention.fused") == 0);

    /* SwiGLU: a decode-sized problem tuned into the same store. */
    tune_swiglu_desc sw = tune_swiglu_desc_init(3, 80, 72);
    tune_tune_result sr;
    CHECK(tune_tune_swiglu(db, &sw, &o, &sr) == TUNE_OK);
    CHECK(sr.found == 1 && sr.measured >= 1 && strcmp(sr.template_name, "cpu.swiglu.blocked") == 0);
    printf("tuned swiglu: %s %s %.3g s (%zu measured)\n", sr.template_name, sr.config, sr.median_s, sr.measured);

    tune_dispatcher* d = NULL;
    CHECK(tune_dispatcher_open(db, NULL, &d) == TUNE_OK);
    if (!d) return 1;
    size_t entries = 0;
    CHECK(tune_dispatcher_stats(d, &entries, NULL, NULL) == TUNE_OK);
    CHECK(entries >= 1);

    tune_selection s;
    CHECK(tune_lookup_gemm(d, &g, &s) == TUNE_OK);
    CHECK(strcmp(s.template_name, r.template_name) == 0 && strcmp(s.config, r.config) == 0);
    CHECK(s.tuned_median_s > 0 && strstr(s.store, "c_api_test.db") != NULL);

    check_run(d, 32, 64, 48, TUNE_SOURCE_EXACT);
    check_run(d, 40, 64, 48, TUNE_SOURCE_NEAREST);
    check_bf16(d);
    check_swiglu(d, 3, 80, 72, TUNE_SOURCE_EXACT);
    {
        tune_swiglu_desc sd = tune_swiglu_desc_init(3, 80, 72);
        tune_selection ss;
        CHECK(tune_lookup_swiglu(d, &sd, &ss) == TUNE_OK && strcmp(ss.config, sr.config) == 0);
    }
    {
        tune_selection as;
        CHECK(tune_lookup_attention(d, &at, &as) == TUNE_OK);
        CHECK(as.source == TUNE_SOURCE_EXACT && strcmp(as.config, ar.config) == 0);
        CHECK(tune_lookup_attention_bf16(d, &at, &as) == TUNE_OK);
        CHECK(as.source == TUNE_SOURCE_EXACT && strcmp(as.config, ar16.config) == 0);
        tune_attention_desc back = at;
        back.backward = 1;
        CHECK(tune_lookup_attention_bf16(d, &back, &as) == TUNE_ERR_INVALID_ARGUMENT);
        CHECK(strstr(tune_last_error(), "forward only") != NULL);
        check_attention(d, at, 1);
        tune_attention_desc w = tune_attention_desc_init(2, 3, 1, 5, 11, 24); /* MQA, sliding window */
        w.window = 4;
        check_attention(d, w, 1);
        tune_attention_desc decode = tune_attention_desc_init(1, 8, 2, 1, 37, 64);
        check_attention(d, decode, 0);
        tune_attention_desc scaled = tune_attention_desc_init(1, 4, 4, 6, 6, 32); /* a user softmax scale */
        scaled.causal = 1;
        scaled.scale = 0.3;
        check_attention(d, scaled, 1);
        check_paged(d, paged, 16, 1);
        tune_attention_desc prefill = tune_attention_desc_init(1, 4, 4, 9, 23, 16); /* untuned, pages of 5 */
        prefill.causal = 1;
        check_paged(d, prefill, 5, 0);
    }

    /* No store: template defaults, still correct. */
    tune_dispatcher* defaults = NULL;
    CHECK(tune_dispatcher_open(NULL, NULL, &defaults) == TUNE_OK);
    if (defaults) check_run(defaults, 32, 64, 48, TUNE_SOURCE_DEFAULT);
    if (defaults) check_swiglu(defaults, 17, 33, 40, TUNE_SOURCE_DEFAULT);
    tune_dispatcher_close(defaults);
    check_errors(d, argv[1]);
    check_attention_errors(d);
    tune_dispatcher_close(d);
    check_model_problems(argv[1]);

    if (failures) {
        fprintf(stderr, "c_api_test: %d check(s) failed\n", failures);
        return 1;
    }
    printf("c_api_test: ok\n");
    return 0;
}
