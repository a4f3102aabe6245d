// libtune._libtune: the Python binding. A thin pybind11 layer over the C API (tune/c_api.h):
// it checks array shapes, dtypes and contiguity, passes pointers without copying, releases
// the GIL while kernels and tuning run, and turns status codes into Python exceptions.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <tune/c_api.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

PyObject* error_type = nullptr;           // libtune.Error (RuntimeError)
PyObject* database_error_type = nullptr;  // libtune.DatabaseError (libtune.Error)

void raise_on_error(int status) {
    if (status == TUNE_OK) return;
    if (status == TUNE_ERR_OUT_OF_MEMORY) throw std::bad_alloc();
    const std::string message = tune_last_error();
    // A message may quote bytes of a bad input file that are not UTF-8: shown as U+FFFD
    // instead of an empty message.
    auto text = py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(message.data(), py::ssize_t(message.size()), "replace"));
    if (!text) throw py::error_already_set();
    PyErr_SetObject(status == TUNE_ERR_INVALID_ARGUMENT ? PyExc_ValueError
                    : status == TUNE_ERR_DATABASE       ? database_error_type
                                                        : error_type,
                    text.ptr());
    throw py::error_already_set();
}

// A str handed to C as a path or a name: an embedded NUL would cut it short there, silently
// naming another file.
const char* c_text(const std::string& text, const char* what) {
    if (text.find('\0') != std::string::npos) throw py::value_error(std::string(what) + ": embedded null character");
    return text.c_str();
}

tune_dtype parse_dtype(const std::string& name) {
    if (name == "f32" || name == "float32") return TUNE_F32;
    if (name == "bf16" || name == "bfloat16") return TUNE_BF16;
    throw py::value_error("dtype: '" + name + "' is not 'f32' or 'bf16'");
}

tune_activation parse_act(const std::string& name) {
    if (name == "none") return TUNE_ACT_NONE;
    if (name == "gelu") return TUNE_ACT_GELU;
    if (name == "silu") return TUNE_ACT_SILU;
    throw py::value_error("act: '" + name + "' is not 'none', 'gelu' or 'silu'");
}

tune_gemm_desc make_desc(std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t batch, bool trans_a,
                         bool trans_b, const std::string& dtype, bool bias, const std::string& act, bool residual,
                         double tolerance) {
    tune_gemm_desc g = tune_gemm_desc_init(m, n, k);
    g.batch = batch;
    g.trans_a = trans_a;
    g.trans_b = trans_b;
    g.dtype = parse_dtype(dtype);
    g.bias = bias;
    g.act = parse_act(act);
    g.residual = residual;
    g.tolerance = tolerance;
    return g;
}

tune_swiglu_desc make_swiglu_desc(std::int64_t m, std::int64_t n, std::int64_t k, const std::string& dtype,
                                  double tolerance) {
    tune_swiglu_desc s = tune_swiglu_desc_init(m, n, k);
    s.dtype = parse_dtype(dtype);
    s.tolerance = tolerance;
    return s;
}

tune_attention_desc make_attention_desc(std::int64_t batch, std::int64_t heads, std::int64_t kv_heads,
                                        std::int64_t q_len, std::int64_t kv_len, std::int64_t head_dim, bool causal,
                                        std::int64_t window, bool backward, double tolerance, double scale) {
    tune_attention_desc a = tune_attention_desc_init(batch, heads, kv_heads, q_len, kv_len, head_dim);
    a.scale = scale;
    a.causal = causal;
    a.window = window;
    a.backward = backward;
    a.tolerance = tolerance;
    return a;
}

// A buffer checked to be C-contiguous with the expected element kind; `name` is used in messages.
struct Operand {
    py::buffer_info info;
    const std::vector<py::ssize_t>& shape() const { return info.shape; }
};

Operand request(const py::buffer& object, const char* name, bool writable, bool bf16_bits) {
    py::buffer_info info;
    try {
        info = object.request(writable);
    } catch (py::error_already_set& e) {  // e.g. a read-only array passed as out
        throw py::value_error(std::string(name) + ": cannot access its buffer" + (writable ? " for writing" : "") +
                              " (" + e.what() + ")");
    }
    const std::string& f = info.format;
    const bool is_f32 = info.itemsize == 4 && (f == "f" || f == "<f" || f == "=f");
    const bool is_u16 = info.itemsize == 2 && (f == "H" || f == "h" || f == "<H" || f == "<h" || f == "=H" || f == "=h");
    if (bf16_bits ? !is_u16 : !is_f32)
        throw py::type_error(std::string(name) + ": expected " + (bf16_bits ? "uint16 (bf16 bits)" : "float32") +
                             " elements, got format '" + f + "' with itemsize " + std::to_string(info.itemsize));
    py::ssize_t expect = info.itemsize;
    for (auto d = info.ndim; d-- > 0;) {
        if (info.shape[d] > 1 && info.strides[d] != expect)
            throw py::value_error(std::string(name) + ": must be C-contiguous (use numpy.ascontiguousarray; "
                                  "libtune never copies operands)");
        expect *= info.shape[d];
    }
    return {std::move(info)};
}

// A block table: C-contiguous int32.
Operand request_table(const py::buffer& object) {
    py::buffer_info info = object.request(false);
    const std::string& f = info.format;
    if (info.itemsize != 4 || (f != "i" && f != "<i" && f != "=i" && f != "l" && f != "<l" && f != "=l"))
        throw py::type_error("block_table: expected int32 elements, got format '" + f + "' with itemsize " +
                             std::to_string(info.itemsize));
    if (info.ndim != 2 || (info.shape[1] > 1 && info.strides[1] != 4) ||
        (info.shape[0] > 1 && info.strides[0] != 4 * info.shape[1]))
        throw py::value_error("block_table: must be a C-contiguous 2-D array (batch, pages per sequence)");
    return {std::move(info)};
}

std::string shape_text(const std::vector<py::ssize_t>& s) {
    std::string out = "(";
    for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + (s.size() == 1 ? ",)" : ")");
}

// The attention desc that q (batch, heads, q_len, head_dim) and k, v (batch, kv_heads, kv_len,
// head_dim) describe; mismatched shapes are named in the error.
tune_attention_desc attention_shapes(const Operand& q, const Operand& k, const Operand& v, bool causal,
                                     std::int64_t window, bool backward, double tolerance, double scale) {
    if (q.info.ndim != 4 || k.info.ndim != 4 || v.info.ndim != 4)
        throw py::value_error("q, k and v must be 4-D (batch, heads, length, head_dim); got shapes " +
                              shape_text(q.shape()) + ", " + shape_text(k.shape()) + ", " + shape_text(v.shape()));
    const auto& sq = q.shape();
    const auto& sk = k.shape();
    if (sk != v.shape() || sk[0] != sq[0] || sk[3] != sq[3])
        throw py::value_error("shapes do not match: q " + shape_text(sq) + ", k " + shape_text(sk) + ", v " +
                              shape_text(v.shape()) + " (k and v: (batch, kv_heads, kv_len, head_dim) with q's batch "
                              "and head_dim)");
    return make_attention_desc(sq[0], sq[1], sk[1], sq[2], sk[2], sq[3], causal, window, backward, tolerance, scale);
}

struct Dispatcher {
    std::unique_ptr<tune_dispatcher, void (*)(tune_dispatcher*)> handle{nullptr, tune_dispatcher_close};

    Dispatcher(std::optional<std::string> db, std::optional<std::string> user_db) {
        tune_dispatcher* d = nullptr;
        raise_on_error(tune_dispatcher_open(db ? c_text(*db, "db") : nullptr, user_db ? c_text(*user_db, "user_db") : nullptr, &d));
        handle.reset(d);
    }

    py::dict lookup(const tune_gemm_desc& g) const {
        tune_selection s;
        raise_on_error(tune_lookup_gemm(handle.get(), &g, &s));
        return selection(s);
    }

    py::dict lookup_swiglu(const tune_swiglu_desc& d) const {
        tune_selection s;
        raise_on_error(tune_lookup_swiglu(handle.get(), &d, &s));
        return selection(s);
    }

    // out = silu(x w_gate^T) * (x w_up^T) with x (m, k), both weights (n, k), out (m, n) float32;
    // bf16: x and the weights hold bf16 bits (uint16).
    void swiglu(const py::buffer& x, const py::buffer& w_gate, const py::buffer& w_up, const py::buffer& out,
                double tolerance, const std::string& dtype_name) const {
        const bool bits = parse_dtype(dtype_name) == TUNE_BF16;
        Operand ox = request(x, "x", false, bits), og = request(w_gate, "w_gate", false, bits);
        Operand ou = request(w_up, "w_up", false, bits), oo = request(out, "out", true, false);
        if (ox.info.ndim != 2 || og.info.ndim != 2 || ou.info.ndim != 2 || oo.info.ndim != 2)
            throw py::value_error("x, w_gate, w_up and out must all be 2-D; got shapes " + shape_text(ox.shape()) + ", " +
                                  shape_text(og.shape()) + ", " + shape_text(ou.shape()) + ", " + shape_text(oo.shape()));
        const std::int64_t m = ox.info.shape[0], k = ox.info.shape[1], n = og.info.shape[0];
        if (og.info.shape[1] != k || ou.shape() != og.shape() || oo.info.shape[0] != m || oo.info.shape[1] != n)
            throw py::value_error("shapes do not match: x " + shape_text(ox.shape()) + ", w_gate " +
                                  shape_text(og.shape()) + ", w_up " + shape_text(ou.shape()) + ", out " +
                                  shape_text(oo.shape()) + " (expected x (m, k), weights (n, k), out (m, n))");
        const tune_swiglu_desc d = make_swiglu_desc(m, n, k, bits ? "bf16" : "f32", tolerance);
        int status;
        {
            py::gil_scoped_release release;
            status = tune_swiglu(handle.get(), &d, ox.info.ptr, og.info.ptr, ou.info.ptr, static_cast<float*>(oo.info.ptr));
        }
        raise_on_error(status);
    }

    py::dict lookup_attention(const tune_attention_desc& a, bool bf16) const {
        tune_selection s;
        raise_on_error(bf16 ? tune_lookup_attention_bf16(handle.get(), &a, &s) : tune_lookup_attention(handle.get(), &a, &s));
        return selection(s);
    }

    static py::dict selection(const tune_selection& s) {
        static const char* sources[] = {"exact", "nearest", "default", "bucket", "predicted"};
        py::dict out;
        out["template"] = s.template_name;
        out["config"] = s.config;
        out["source"] = sources[s.source];
        out["store"] = s.store;
        out["tuned_median_s"] = s.tuned_median_s;
        return out;
    }

    // out = act(op(a) op(b) + bias) + residual; dims come from the arrays' shapes. bf16: a and b
    // hold bf16 bits (uint16); bias, residual and out are float32.
    void gemm(const py::buffer& a, const py::buffer& b, const py::buffer& out, std::optional<py::buffer> bias,
              std::optional<py::buffer> residual, bool trans_a, bool trans_b, const std::string& act,
              double tolerance, const std::string& dtype_name) const {
        const tune_dtype dtype = parse_dtype(dtype_name);
        const bool bits = dtype == TUNE_BF16;
        Operand oa = request(a, "a", false, bits);
        Operand ob = request(b, "b", false, bits), oc = request(out, "out", true, false);
        const auto nd = oa.info.ndim;
        if ((nd != 2 && nd != 3) || ob.info.ndim != nd || oc.info.ndim != nd)
            throw py::value_error("a, b and out must all be 2-D, or all 3-D (batched); got shapes " +
                                  shape_text(oa.shape()) + ", " + shape_text(ob.shape()) + ", " + shape_text(oc.shape()));
        const std::int64_t batch = nd == 3 ? oa.info.shape[0] : 1;
        const auto& sa = oa.info.shape; const auto& sb = ob.info.shape; const auto& sc = oc.info.shape;
        const std::size_t o = nd == 3 ? 1 : 0;
        const std::int64_t m = trans_a ? sa[o + 1] : sa[o], k = trans_a ? sa[o] : sa[o + 1];
        const std::int64_t kb = trans_b ? sb[o + 1] : sb[o], n = trans_b ? sb[o] : sb[o + 1];
        if (kb != k || sc[o] != m || sc[o + 1] != n || (nd == 3 && (sb[0] != batch || sc[0] != batch)))
            throw py::value_error("shapes do not match: a " + shape_text(sa) + (trans_a ? " (transposed)" : "") +
                                  ", b " + shape_text(sb) + (trans_b ? " (transposed)" : "") + ", out " +
                                  shape_text(sc));
        tune_gemm_desc g = make_desc(m, n, k, batch, trans_a, trans_b, bits ? "bf16" : "f32", bias.has_value(), act,
                                     residual.has_value(), tolerance);
        std::optional<Operand> obias, ores;
        if (bias) {
            obias = request(*bias, "bias", false, false);
            if (obias->info.ndim != 1 || obias->info.shape[0] != n)
                throw py::value_error("bias: expected shape (" + std::to_string(n) + ",), got " + shape_text(obias->shape()));
        }
        if (residual) {
            ores = request(*residual, "residual", false, false);
            if (ores->shape() != oc.shape())
                throw py::value_error("residual: expected the shape of out " + shape_text(oc.shape()) + ", got " +
                                      shape_text(ores->shape()));
        }
        int status;
        {
            py::gil_scoped_release release;
            status = tune_gemm(handle.get(), &g, oa.info.ptr, ob.info.ptr,
                               obias ? static_cast<const float*>(obias->info.ptr) : nullptr,
                               ores ? static_cast<const float*>(ores->info.ptr) : nullptr,
                               static_cast<float*>(oc.info.ptr));
        }
        raise_on_error(status);
    }

    // out = attention(q, k, v) with q (batch, heads, q_len, head_dim) and k, v (batch, kv_heads,
    // kv_len, head_dim), float32 or (bf16) uint16 bf16 bits; out and lse (batch, heads, q_len,
    // when given) float32. Dims come from the shapes.
    void attention(const py::buffer& q, const py::buffer& k, const py::buffer& v, const py::buffer& out,
                   std::optional<py::buffer> lse, bool causal, std::int64_t window, double tolerance,
                   double scale, bool bf16) const {
        Operand oq = request(q, "q", false, bf16), ok = request(k, "k", false, bf16);
        Operand ov = request(v, "v", false, bf16), oo = request(out, "out", true, false);
        const tune_attention_desc a = attention_shapes(oq, ok, ov, causal, window, false, tolerance, scale);
        if (oo.shape() != oq.shape())
            throw py::value_error("out: expected the shape of q " + shape_text(oq.shape()) + ", got " +
                                  shape_text(oo.shape()));
        std::optional<Operand> olse;
        if (lse) {
            olse = request(*lse, "lse", true, false);
            const std::vector<py::ssize_t> expect(oq.shape().begin(), oq.shape().end() - 1);
            if (olse->shape() != expect)
                throw py::value_error("lse: expected shape " + shape_text(expect) + ", got " + shape_text(olse->shape()));
        }
        int status;
        {
            py::gil_scoped_release release;
            float* o = static_cast<float*>(oo.info.ptr);
            float* l = olse ? static_cast<float*>(olse->info.ptr) : nullptr;
            status = bf16 ? tune_attention_bf16(handle.get(), &a, static_cast<const std::uint16_t*>(oq.info.ptr),
                                                static_cast<const std::uint16_t*>(ok.info.ptr),
                                                static_cast<const std::uint16_t*>(ov.info.ptr), o, l)
                          : tune_attention(handle.get(), &a, static_cast<const float*>(oq.info.ptr),
                                           static_cast<const float*>(ok.info.ptr),
                                           static_cast<const float*>(ov.info.ptr), o, l);
        }
        raise_on_error(status);
    }

    // attention on a paged KV cache: q (batch, heads, q_len, head_dim); k_pool and v_pool
    // (pool_pages, page, kv_heads, head_dim); block_table (batch, ceil(kv_len / page)) int32.
    void attention_paged(const py::buffer& q, const py::buffer& k_pool, const py::buffer& v_pool,
                         const py::buffer& block_table, const py::buffer& out, std::optional<py::buffer> lse,
                         std::int64_t kv_len, bool causal, std::int64_t window, double tolerance, double scale,
                         bool bf16) const {
        Operand oq = request(q, "q", false, bf16), ok = request(k_pool, "k_pool", false, bf16);
        Operand ov = request(v_pool, "v_pool", false, bf16), oo = request(out, "out", true, false);
        Operand ot = request_table(block_table);
        const auto& sq = oq.shape();
        const auto& sk = ok.shape();
        if (oq.info.ndim != 4 || ok.info.ndim != 4 || sk != ov.shape() || sk[3] != sq[3])
            throw py::value_error("shapes do not match: q " + shape_text(sq) + " (batch, heads, q_len, head_dim), k_pool " +
                                  shape_text(sk) + " and v_pool " + shape_text(ov.shape()) +
                                  " (pool_pages, page, kv_heads, head_dim) with q's head_dim");
        const std::int64_t page = sk[1];
        if (kv_len < 1 || page < 1) throw py::value_error("kv_len and the page size must be >= 1");
        const std::vector<py::ssize_t> table_shape{sq[0], py::ssize_t(kv_len / page + (kv_len % page != 0))};  // no overflow
        if (ot.shape() != table_shape)
            throw py::value_error("block_table: expected shape " + shape_text(table_shape) +
                                  " (batch, ceil(kv_len / page)), got " + shape_text(ot.shape()));
        if (oo.shape() != sq)
            throw py::value_error("out: expected the shape of q " + shape_text(sq) + ", got " + shape_text(oo.shape()));
        std::optional<Operand> olse;
        if (lse) {
            olse = request(*lse, "lse", true, false);
            const std::vector<py::ssize_t> expect(sq.begin(), sq.end() - 1);
            if (olse->shape() != expect)
                throw py::value_error("lse: expected shape " + shape_text(expect) + ", got " + shape_text(olse->shape()));
        }
        const tune_attention_desc a =
            make_attention_desc(sq[0], sq[1], sk[2], sq[2], kv_len, sq[3], causal, window, false, tolerance, scale);
        int status;
        {
            py::gil_scoped_release release;
            float* o = static_cast<float*>(oo.info.ptr);
            float* l = olse ? static_cast<float*>(olse->info.ptr) : nullptr;
            const auto* table = static_cast<const std::int32_t*>(ot.info.ptr);
            status = bf16 ? tune_attention_paged_bf16(handle.get(), &a, page, sk[0],
                                                      static_cast<const std::uint16_t*>(oq.info.ptr),
                                                      static_cast<const std::uint16_t*>(ok.info.ptr),
                                                      static_cast<const std::uint16_t*>(ov.info.ptr), table, o, l)
                          : tune_attention_paged(handle.get(), &a, page, sk[0], static_cast<const float*>(oq.info.ptr),
                                                 static_cast<const float*>(ok.info.ptr),
                                                 static_cast<const float*>(ov.info.ptr), table, o, l);
        }
        raise_on_error(status);
    }

    py::dict lookup_attention_paged(const tune_attention_desc& a, std::int64_t page, bool bf16) const {
        tune_selection s;
        raise_on_error(tune_lookup_attention_paged(handle.get(), &a, page, bf16 ? 1 : 0, &s));
        return selection(s);
    }

    // dq, dk, dv from the forward's q, k, v, o, lse and the output gradient d_o.
    void attention_backward(const py::buffer& q, const py::buffer& k, const py::buffer& v, const py::buffer& o,
                            const py::buffer& lse, const py::buffer& d_o, const py::buffer& dq, const py::buffer& dk,
                            const py::buffer& dv, bool causal, std::int64_t window, double tolerance,
                            double scale) const {
        Operand oq = request(q, "q", false, false), ok = request(k, "k", false, false);
        Operand ov = request(v, "v", false, false), oo = request(o, "o", false, false);
        Operand olse = request(lse, "lse", false, false), odo = request(d_o, "d_o", false, false);
        Operand odq = request(dq, "dq", true, false), odk = request(dk, "dk", true, false);
        Operand odv = request(dv, "dv", true, false);
        const tune_attention_desc a = attention_shapes(oq, ok, ov, causal, window, true, tolerance, scale);
        const std::vector<py::ssize_t> rows(oq.shape().begin(), oq.shape().end() - 1);
        auto same = [](const Operand& x, const std::vector<py::ssize_t>& shape, const char* name) {
            if (x.shape() != shape)
                throw py::value_error(std::string(name) + ": expected shape " + shape_text(shape) + ", got " +
                                      shape_text(x.shape()));
        };
        same(oo, oq.shape(), "o"), same(odo, oq.shape(), "d_o"), same(odq, oq.shape(), "dq");
        same(olse, rows, "lse"), same(odk, ok.shape(), "dk"), same(odv, ok.shape(), "dv");
        auto f = [](const Operand& x) { return static_cast<const float*>(x.info.ptr); };
        auto w = [](const Operand& x) { return static_cast<float*>(x.info.ptr); };
        int status;
        {
            py::gil_scoped_release release;
            status = tune_attention_backward(handle.get(), &a, f(oq), f(ok), f(ov), f(oo), f(olse), f(odo), w(odq),
                                             w(odk), w(odv));
        }
        raise_on_error(status);
    }

    py::dict stats() const {
        size_t entries = 0, stale = 0, rejected = 0;
        raise_on_error(tune_dispatcher_stats(handle.get(), &entries, &stale, &rejected));
        py::dict out;
        out["entries"] = entries;
        out["stale"] = stale;
        out["rejected"] = rejected;
        return out;
    }
};

py::dict result_dict(const tune_tune_result& r) {
    py::dict out;
    out["template"] = r.template_name;
    out["config"] = r.config;
    out["median_s"] = r.median_s;
    out["gflops"] = r.gflops;
    out["default_median_s"] = r.default_median_s;
    out["measured"] = r.measured;
    out["reused"] = r.reused;
    out["failed"] = r.failed;
    return out;
}

tune_tune_options tune_options(std::size_t budget, double time_limit, std::uint64_t seed,
                               const std::optional<std::string>& strategy, bool isolate) {
    tune_tune_options o = tune_tune_options_init();
    o.budget = budget;
    o.time_limit_s = time_limit;
    o.seed = seed;
    o.strategy = strategy ? c_text(*strategy, "strategy") : nullptr;
    o.isolate = isolate;
    return o;
}

// Tunes one problem through the C API's tune_tune_gemm or tune_tune_attention.
template <class Desc, int (*Tune)(const char*, const Desc*, const tune_tune_options*, tune_tune_result*)>
py::dict tune_py(const std::string& db, const Desc& desc, std::size_t budget, double time_limit, std::uint64_t seed,
                 std::optional<std::string> strategy, bool isolate) {
    const tune_tune_options o = tune_options(budget, time_limit, seed, strategy, isolate);
    const char* path = c_text(db, "db");
    tune_tune_result r;
    int status;
    {
        py::gil_scoped_release release;
        status = Tune(path, &desc, &o, &r);
    }
    raise_on_error(status);
    return result_dict(r);
}

// One layer's problems from a config.json (tune_model_problems): a list of dicts with name,
// tokens, op ("gemm" / "swiglu" / "attention") and args, the keyword arguments of tune_gemm /
// tune_swiglu / tune_attention for that problem.
py::list model_problems(const std::string& path, const std::vector<std::int64_t>& tokens, std::int64_t kv_len,
                        const std::string& dtype) {
    const tune_dtype dt = parse_dtype(dtype);
    size_t count = 0;
    raise_on_error(tune_model_problems(c_text(path, "path"), tokens.data(), tokens.size(), kv_len, dt, nullptr, 0, &count));
    std::vector<tune_model_problem> problems(count);
    raise_on_error(tune_model_problems(path.c_str(), tokens.data(), tokens.size(), kv_len, dt, problems.data(),
                                       problems.size(), &count));
    py::list out;
    for (const tune_model_problem& p : problems) {
        py::dict args;
        if (p.op == TUNE_OP_GEMM) {
            const tune_gemm_desc& g = p.gemm;
            args["m"] = g.m, args["n"] = g.n, args["k"] = g.k, args["batch"] = g.batch;
            args["trans_a"] = g.trans_a != 0, args["trans_b"] = g.trans_b != 0;
            args["dtype"] = g.dtype == TUNE_BF16 ? "bf16" : "f32";
        } else if (p.op == TUNE_OP_SWIGLU) {
            args["m"] = p.swiglu.m, args["n"] = p.swiglu.n, args["k"] = p.swiglu.k;
            args["dtype"] = p.swiglu.dtype == TUNE_BF16 ? "bf16" : "f32";
        } else {
            const tune_attention_desc& a = p.attention;
            args["batch"] = a.batch, args["heads"] = a.heads, args["kv_heads"] = a.kv_heads;
            args["q_len"] = a.q_len, args["kv_len"] = a.kv_len, args["head_dim"] = a.head_dim;
            args["causal"] = a.causal != 0, args["window"] = a.window;
            args["scale"] = a.scale == 0 ? py::object(py::none()) : py::object(py::float_(a.scale));
        }
        py::dict d;
        d["name"] = std::string(p.name);
        d["tokens"] = p.tokens;
        d["op"] = p.op == TUNE_OP_GEMM ? "gemm" : p.op == TUNE_OP_SWIGLU ? "swiglu" : "attention";
        d["args"] = args;
        out.append(d);
    }
    return out;
}

}  // namespace

PYBIND11_MODULE(_libtune, mod) {
    mod.doc() = "libtune C API binding; use the libtune package, not this module";
    static py::exception<void> error(mod, "Error", PyExc_RuntimeError);
    static py::exception<void> database_error(mod, "DatabaseError", error.ptr());
    error_type = error.ptr();
    database_error_type = database_error.ptr();
    mod.attr("version") = tune_version();
    mod.attr("c_api_version") = tune_c_api_version();

    py::class_<tune_gemm_desc>(mod, "GemmDesc");
    mod.def("gemm_desc", &make_desc, py::arg("m"), py::arg("n"), py::arg("k"), py::arg("batch") = 1,
            py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("dtype") = "f32", py::arg("bias") = false,
            py::arg("act") = "none", py::arg("residual") = false, py::arg("tolerance") = 0.0);

    py::class_<tune_swiglu_desc>(mod, "SwigluDesc");
    mod.def("swiglu_desc", &make_swiglu_desc, py::arg("m"), py::arg("n"), py::arg("k"), py::arg("dtype") = "f32",
            py::arg("tolerance") = 0.0);

    py::class_<tune_attention_desc>(mod, "AttentionDesc");
    mod.def("attention_desc", &make_attention_desc, py::arg("batch"), py::arg("heads"), py::arg("kv_heads"),
            py::arg("q_len"), py::arg("kv_len"), py::arg("head_dim"), py::arg("causal") = false, py::arg("window") = 0,
            py::arg("backward") = false, py::arg("tolerance") = 0.0, py::arg("scale") = 0.0);

    py::class_<Dispatcher>(mod, "Dispatcher")
        .def(py::init<std::optional<std::string>, std::optional<std::string>>(), py::arg("db"),
             py::arg("user_db") = py::none())
        .def("lookup", &Dispatcher::lookup, py::arg("desc"))
        .def("lookup_attention", &Dispatcher::lookup_attention, py::arg("desc"), py::arg("bf16"))
        .def("attention", &Dispatcher::attention, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
             py::arg("lse"), py::arg("causal"), py::arg("window"), py::arg("tolerance"), py::arg("scale"),
             py::arg("bf16"))
        .def("attention_backward", &Dispatcher::attention_backward, py::arg("q"), py::arg("k"), py::arg("v"),
             py::arg("o"), py::arg("lse"), py::arg("d_o"), py::arg("dq"), py::arg("dk"), py::arg("dv"),
             py::arg("causal"), py::arg("window"), py::arg("tolerance"), py::arg("scale"))
        .def("attention_paged", &Dispatcher::attention_paged, py::arg("q"), py::arg("k_pool"), py::arg("v_pool"),
             py::arg("block_table"), py::arg("out"), py::arg("lse"), py::arg("kv_len"), py::arg("causal"),
             py::arg("window"), py::arg("tolerance"), py::arg("scale"), py::arg("bf16"))
        .def("lookup_attention_paged", &Dispatcher::lookup_attention_paged, py::arg("desc"), py::arg("page"),
             py::arg("bf16"))
        .def("lookup_swiglu", &Dispatcher::lookup_swiglu, py::arg("desc"))
        .def("swiglu", &Dispatcher::swiglu, py::arg("x"), py::arg("w_gate"), py::arg("w_up"), py::arg("out"),
             py::arg("tolerance"), py::arg("dtype"))
        .def("stats", &Dispatcher::stats)
        .def("gemm", &Dispatcher::gemm, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("bias"),
             py::arg("residual"), py::arg("trans_a"), py::arg("trans_b"), py::arg("act"), py::arg("tolerance"),
             py::arg("dtype"));

    mod.def("tune_attention", &tune_py<tune_attention_desc, tune_tune_attention>, py::arg("db"), py::arg("desc"), py::arg("budget"),
            py::arg("time_limit"), py::arg("seed"), py::arg("strategy"), py::arg("isolate"));
    mod.def("tune_attention_bf16", &tune_py<tune_attention_desc, tune_tune_attention_bf16>, py::arg("db"), py::arg("desc"),
            py::arg("budget"), py::arg("time_limit"), py::arg("seed"), py::arg("strategy"), py::arg("isolate"));
    mod.def(
        "tune_attention_paged",
        [](const std::string& db, const tune_attention_desc& desc, std::int64_t page, bool bf16, std::size_t budget,
           double time_limit, std::uint64_t seed, std::optional<std::string> strategy, bool isolate) {
            const tune_tune_options o = tune_options(budget, time_limit, seed, strategy, isolate);
            const char* path = c_text(db, "db");
            tune_tune_result r;
            int status;
            {
                py::gil_scoped_release release;
                status = tune_tune_attention_paged(path, &desc, page, bf16 ? 1 : 0, &o, &r);
            }
            raise_on_error(status);
            return result_dict(r);
        },
        py::arg("db"), py::arg("desc"), py::arg("page"), py::arg("bf16"), py::arg("budget"), py::arg("time_limit"),
        py::arg("seed"), py::arg("strategy"), py::arg("isolate"));
    mod.def("model_problems", &model_problems, py::arg("path"), py::arg("tokens"), py::arg("kv_len"), py::arg("dtype"));
    mod.def("tune_swiglu", &tune_py<tune_swiglu_desc, tune_tune_swiglu>, py::arg("db"), py::arg("desc"),
            py::arg("budget"), py::arg("time_limit"), py::arg("seed"), py::arg("strategy"), py::arg("isolate"));
    mod.def("tune_gemm", &tune_py<tune_gemm_desc, tune_tune_gemm>, py::arg("db"), py::arg("desc"), py::arg("budget"), py::arg("time_limit"),
            py::arg("seed"), py::arg("strategy"), py::arg("isolate"));
}
