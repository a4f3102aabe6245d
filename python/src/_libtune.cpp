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
    std::string message = tune_last_error();
    if (status == TUNE_ERR_INVALID_ARGUMENT) throw py::value_error(message);
    if (status == TUNE_ERR_OUT_OF_MEMORY) throw std::bad_alloc();
    PyErr_SetString(status == TUNE_ERR_DATABASE ? database_error_type : error_type, message.c_str());
    throw py::error_already_set();
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

std::string shape_text(const std::vector<py::ssize_t>& s) {
    std::string out = "(";
    for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + (s.size() == 1 ? ",)" : ")");
}

struct Dispatcher {
    std::unique_ptr<tune_dispatcher, void (*)(tune_dispatcher*)> handle{nullptr, tune_dispatcher_close};

    Dispatcher(std::optional<std::string> db, std::optional<std::string> user_db) {
        tune_dispatcher* d = nullptr;
        raise_on_error(tune_dispatcher_open(db ? db->c_str() : nullptr, user_db ? user_db->c_str() : nullptr, &d));
        handle.reset(d);
    }

    py::dict lookup(const tune_gemm_desc& g) const {
        tune_selection s;
        raise_on_error(tune_lookup_gemm(handle.get(), &g, &s));
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

py::dict tune_gemm_py(const std::string& db, const tune_gemm_desc& g, std::size_t budget, double time_limit,
                      std::uint64_t seed, std::optional<std::string> strategy, bool isolate) {
    tune_tune_options o = tune_tune_options_init();
    o.budget = budget;
    o.time_limit_s = time_limit;
    o.seed = seed;
    o.strategy = strategy ? strategy->c_str() : nullptr;
    o.isolate = isolate;
    tune_tune_result r;
    int status;
    {
        py::gil_scoped_release release;
        status = tune_tune_gemm(db.c_str(), &g, &o, &r);
    }
    raise_on_error(status);
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

    py::class_<Dispatcher>(mod, "Dispatcher")
        .def(py::init<std::optional<std::string>, std::optional<std::string>>(), py::arg("db"),
             py::arg("user_db") = py::none())
        .def("lookup", &Dispatcher::lookup, py::arg("desc"))
        .def("stats", &Dispatcher::stats)
        .def("gemm", &Dispatcher::gemm, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("bias"),
             py::arg("residual"), py::arg("trans_a"), py::arg("trans_b"), py::arg("act"), py::arg("tolerance"),
             py::arg("dtype"));

    mod.def("tune_gemm", &tune_gemm_py, py::arg("db"), py::arg("desc"), py::arg("budget"), py::arg("time_limit"),
            py::arg("seed"), py::arg("strategy"), py::arg("isolate"));
}
