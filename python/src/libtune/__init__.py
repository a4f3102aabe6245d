"""libtune from Python: tune GEMM, SwiGLU and attention shapes into a SQLite store, then look up and
run the tuned kernels on NumPy arrays (or PyTorch CPU tensors) in place, without copies.

    import libtune, numpy as np
    libtune.tune_gemm(64, 4096, 4096, db="tuned.db", trans_b=True, budget=16)
    d = libtune.Dispatcher("tuned.db")
    d.lookup(64, 4096, 4096, trans_b=True)     # {'template': ..., 'config': ..., 'source': 'exact', ...}
    c = d.gemm(a, w, trans_b=True)             # a: (64, 4096) float32, w: (4096, 4096) float32
    o = d.attention(q, k, v, causal=True)      # q: (batch, heads, q_len, head_dim), k/v: (batch, kv_heads, kv_len, head_dim)
    h = d.swiglu(x, w_gate, w_up)              # silu(x @ w_gate.T) * (x @ w_up.T), weights (n, k)
"""
import functools

import numpy as np

from . import _libtune
from ._libtune import DatabaseError, Error

__all__ = ["Dispatcher", "gemm", "swiglu", "attention", "tune_gemm", "tune_swiglu", "tune_attention", "model_problems",
           "tune_model", "Error", "DatabaseError", "__version__", "c_api_version"]
__version__ = _libtune.version
c_api_version = _libtune.c_api_version


def _is_torch(x):
    return type(x).__module__.startswith("torch")


def _view(x, name):
    """A NumPy view of x sharing its memory: NumPy arrays as they are, PyTorch CPU tensors
    through DLPack (bf16 tensors as their uint16 bits). Never copies; refuses what it would
    have to copy."""
    if isinstance(x, np.ndarray):
        return x
    if _is_torch(x):
        import torch

        if x.device.type != "cpu":
            raise ValueError(f"{name}: tensor is on {x.device}; libtune runs on CPU tensors")
        if x.dtype == torch.bfloat16:  # NumPy has no bf16: share its bits as uint16
            return np.from_dlpack(x.detach().view(torch.int16)).view(np.uint16)
        return np.from_dlpack(x.detach())
    if hasattr(x, "__dlpack__"):
        return np.from_dlpack(x)
    raise TypeError(f"{name}: expected a NumPy array or a PyTorch CPU tensor, got {type(x).__name__}")


def _scale(scale):
    """The C API's encoding of the softmax scale: 0 for the default 1/sqrt(head_dim)."""
    if scale is None:
        return 0.0
    scale = float(scale)
    if scale == 0.0:  # 0 would silently mean the default
        raise ValueError("scale must be finite and > 0 (None: 1/sqrt(head_dim)), got 0")
    return scale


def _like(x, shape, returns_torch):
    """A new float32 array (and the NumPy view of it) to return in the caller's array type."""
    v = np.empty(shape, dtype=np.float32)
    if returns_torch:
        import torch

        return torch.from_numpy(v), v
    return v, v


def _qkv_dtype(q, k, v):
    if q.dtype == k.dtype == v.dtype == np.float32:
        return "f32"
    if q.dtype == k.dtype == v.dtype == np.uint16:
        return "bf16"
    raise TypeError(f"q, k and v must all be float32, or all bf16 (uint16 bits); got {q.dtype}, {k.dtype}, {v.dtype}")


def _forward_operands(q, k, v, out, lse, names):
    """An attention forward's views (q, k, v, out, lse), `out` allocated when None and returned
    in the caller's array type, and whether Q, K and V are bf16."""
    vq, vk, vv = _view(q, names[0]), _view(k, names[1]), _view(v, names[2])
    if out is None:
        out, vout = _like(q, vq.shape, _is_torch(q))
    else:
        vout = _view(out, "out")
    vlse = None if lse is None else _view(lse, "lse")
    return out, (vq, vk, vv, vout, vlse), _qkv_dtype(vq, vk, vv) == "bf16"


def _attention_bf16(dtype):
    if dtype in ("f32", "float32"):
        return False
    if dtype in ("bf16", "bfloat16"):
        return True
    raise ValueError(f"dtype: '{dtype}' is not 'f32' or 'bf16'")


def _dtype_of(a, b):
    if a.dtype == np.float32 and b.dtype == np.float32:
        return "f32"
    if a.dtype == np.uint16 and b.dtype == np.uint16:
        return "bf16"
    raise TypeError(f"a and b must both be float32, or both bf16 (uint16 bits); got {a.dtype} and {b.dtype}")


class Dispatcher:
    """Serves tuned configs from a store opened read-only (db=None: template defaults only),
    with an optional user store over it; runs GEMMs with them. Thread-safe."""

    def __init__(self, db, user_db=None):
        self._d = _libtune.Dispatcher(None if db is None else str(db), None if user_db is None else str(user_db))

    def lookup(self, m, n, k, *, batch=1, trans_a=False, trans_b=False, dtype="f32", bias=False, act="none",
               residual=False, tolerance=0.0):
        """The config the runtime uses for this shape: dict with template, config, source
        ('exact', 'nearest' or 'default'), store and tuned_median_s."""
        return self._d.lookup(_libtune.gemm_desc(m, n, k, batch, trans_a, trans_b, dtype, bias, act, residual, tolerance))

    def stats(self):
        return self._d.stats()

    def gemm(self, a, b, out=None, *, bias=None, residual=None, trans_a=False, trans_b=False, act="none",
             tolerance=0.0):
        """out = act(op(a) @ op(b) + bias) + residual, written into `out` (allocated when None)
        and returned. a, b: C-contiguous 2-D (or 3-D batched) float32, or both bf16 as uint16
        bits / torch.bfloat16; trans_b=True takes b as (n, k) like a torch Linear weight."""
        returns_torch = _is_torch(a)
        va, vb = _view(a, "a"), _view(b, "b")
        dtype = _dtype_of(va, vb)
        if out is None:
            if va.ndim not in (2, 3) or vb.ndim != va.ndim:
                raise ValueError(f"a and b must both be 2-D or both 3-D; got shapes {va.shape} and {vb.shape}")
            m = va.shape[-1] if trans_a else va.shape[-2]
            n = vb.shape[-2] if trans_b else vb.shape[-1]
            vout = np.empty(va.shape[:-2] + (m, n), dtype=np.float32)
            out = vout
            if returns_torch:
                import torch

                out = torch.from_numpy(vout)
        else:
            vout = _view(out, "out")
        vbias = None if bias is None else _view(bias, "bias")
        vres = None if residual is None else _view(residual, "residual")
        self._d.gemm(va, vb, vout, vbias, vres, trans_a, trans_b, act, tolerance, dtype)
        return out

    def lookup_swiglu(self, m, n, k, *, dtype="f32", tolerance=0.0):
        """The config the runtime uses for this SwiGLU shape (dict as for lookup)."""
        return self._d.lookup_swiglu(_libtune.swiglu_desc(m, n, k, dtype, tolerance))

    def swiglu(self, x, w_gate, w_up, out=None, *, tolerance=0.0):
        """out = silu(x @ w_gate.T) * (x @ w_up.T), the first half of a gated MLP, written into
        `out` (allocated when None) and returned. x: (m, k); w_gate, w_up: (n, k) like torch
        Linear weights; all C-contiguous float32, or all bf16 (uint16 bits / torch.bfloat16); out
        is float32 (m, n). The tuned config decides whether the gate and up products run fused
        (one pass over x, no intermediates) or as two GEMMs and an elementwise pass."""
        returns_torch = _is_torch(x)
        vx, vg, vu = _view(x, "x"), _view(w_gate, "w_gate"), _view(w_up, "w_up")
        dtype = _dtype_of(vx, vg)
        if vu.dtype != vg.dtype:
            raise TypeError(f"w_gate and w_up must have one dtype; got {vg.dtype} and {vu.dtype}")
        if out is None:
            if vx.ndim != 2 or vg.ndim != 2:
                raise ValueError(f"x and the weights must be 2-D; got shapes {vx.shape} and {vg.shape}")
            out, vout = _like(x, (vx.shape[0], vg.shape[0]), returns_torch)
        else:
            vout = _view(out, "out")
        self._d.swiglu(vx, vg, vu, vout, tolerance, dtype)
        return out

    def lookup_attention(self, batch, heads, kv_heads, q_len, kv_len, head_dim, *, causal=False, window=0,
                         backward=False, tolerance=0.0, scale=None, dtype="f32", page=0):
        """The config the runtime uses for this attention problem (dict as for lookup); dtype
        "bf16": the forward on bf16 Q, K and V; page > 0: on a paged KV cache of that page size."""
        desc = _libtune.attention_desc(batch, heads, kv_heads, q_len, kv_len, head_dim, causal, window, backward,
                                       tolerance, _scale(scale))
        if page:
            return self._d.lookup_attention_paged(desc, int(page), _attention_bf16(dtype))
        return self._d.lookup_attention(desc, _attention_bf16(dtype))

    def attention(self, q, k, v, out=None, *, lse=None, causal=False, window=0, tolerance=0.0, scale=None):
        """out = softmax(scale Q K^T + mask) V (scale None: 1/sqrt(head_dim)), written into `out` (allocated when None)
        and returned. q: (batch, heads, q_len, head_dim); k, v: (batch, kv_heads, kv_len,
        head_dim), all C-contiguous float32, or all bf16 (uint16 bits or PyTorch bfloat16: a bf16 KV
        cache; out stays float32) (GQA/MQA when kv_heads < heads). Query i sits at key
        position i + kv_len - q_len. causal: keys at or before that position; window w: keys
        less than w positions before it. lse (batch, heads, q_len), when given, receives each
        row's log-sum-exp (what backward needs)."""
        out, (vq, vk, vv, vout, vlse), bf16 = _forward_operands(q, k, v, out, lse, ("q", "k", "v"))
        self._d.attention(vq, vk, vv, vout, vlse, causal, window, tolerance, _scale(scale), bf16)
        return out

    def attention_paged(self, q, k_pool, v_pool, block_table, kv_len, out=None, *, lse=None, causal=False, window=0,
                        tolerance=0.0, scale=None):
        """attention(q, k, v) on a paged KV cache, as serving engines keep one: k_pool and v_pool
        (pool_pages, page, kv_heads, head_dim) hold pages of `page` keys (float32, or bf16 as q);
        block_table (batch, ceil(kv_len / page)) int32 lists each sequence's pages in key order,
        every entry a page of the pool (checked before anything is read). The page size is part
        of the tuned problem (tune_attention(..., page=...))."""
        out, (vq, vk, vv, vout, vlse), bf16 = _forward_operands(q, k_pool, v_pool, out, lse, ("q", "k_pool", "v_pool"))
        vtable = _view(block_table, "block_table")
        self._d.attention_paged(vq, vk, vv, vtable, vout, vlse, int(kv_len), causal, window, tolerance, _scale(scale),
                                bf16)
        return out

    def attention_backward(self, q, k, v, o, lse, d_o, *, causal=False, window=0, tolerance=0.0, scale=None):
        """Gradients (dq, dk, dv) of attention for the output gradient d_o, from the forward's
        q, k, v, o and lse; dk and dv sum over each KV head's query heads."""
        returns_torch = _is_torch(q)
        vq, vk, vv = _view(q, "q"), _view(k, "k"), _view(v, "v")
        dq, vdq = _like(q, vq.shape, returns_torch)
        dk, vdk = _like(q, vk.shape, returns_torch)
        dv, vdv = _like(q, vv.shape, returns_torch)
        self._d.attention_backward(vq, vk, vv, _view(o, "o"), _view(lse, "lse"), _view(d_o, "d_o"), vdq, vdk, vdv,
                                   causal, window, tolerance, _scale(scale))
        return dq, dk, dv


@functools.lru_cache(maxsize=16)
def _dispatcher(db):
    return Dispatcher(db)


def gemm(a, b, out=None, *, db=None, **kwargs):
    """Dispatcher(db).gemm(a, b, out, ...), with the dispatcher of each store opened once per
    process (db=None: template defaults)."""
    return _dispatcher(None if db is None else str(db)).gemm(a, b, out, **kwargs)


def swiglu(x, w_gate, w_up, out=None, *, db=None, **kwargs):
    """Dispatcher(db).swiglu(x, w_gate, w_up, out, ...), one dispatcher per store and process."""
    return _dispatcher(None if db is None else str(db)).swiglu(x, w_gate, w_up, out, **kwargs)


def attention(q, k, v, out=None, *, db=None, **kwargs):
    """Dispatcher(db).attention(q, k, v, out, ...), one dispatcher per store and process."""
    return _dispatcher(None if db is None else str(db)).attention(q, k, v, out, **kwargs)


def tune_attention(batch, heads, kv_heads, q_len, kv_len, head_dim, *, db, causal=False, window=0, backward=False,
                   budget=24, seed=0, time_limit=60.0, strategy=None, isolate=False, tolerance=0.0, scale=None,
                   dtype="f32", page=0):
    """Measures up to `budget` candidates for this attention problem (fused vs unfused, tiles,
    ...; backward=True: the gradients, recompute vs store; dtype "bf16": the forward on bf16 Q,
    K and V) into the SQLite store `db`. Returns the best as tune_gemm does."""
    desc = _libtune.attention_desc(batch, heads, kv_heads, q_len, kv_len, head_dim, causal, window, backward,
                                   tolerance, _scale(scale))
    if page:  # a paged KV cache of that page size (forward only)
        return _libtune.tune_attention_paged(str(db), desc, int(page), _attention_bf16(dtype), budget, time_limit, seed,
                                             strategy, isolate)
    tune = _libtune.tune_attention_bf16 if _attention_bf16(dtype) else _libtune.tune_attention
    return tune(str(db), desc, budget, time_limit, seed, strategy, isolate)


def tune_gemm(m, n, k, *, db, budget=24, seed=0, time_limit=60.0, strategy=None, isolate=False, batch=1,
              trans_a=False, trans_b=False, dtype="f32", bias=False, act="none", residual=False, tolerance=0.0):
    """Measures up to `budget` candidates for this GEMM into the SQLite store `db` (created if
    absent; what it already holds is reused). Returns the best: template, config, median_s,
    gflops, default_median_s, measured, reused, failed. Dispatchers opened before do not see
    the new results; open a new one."""
    desc = _libtune.gemm_desc(m, n, k, batch, trans_a, trans_b, dtype, bias, act, residual, tolerance)
    return _libtune.tune_gemm(str(db), desc, budget, time_limit, seed, strategy, isolate)


def tune_swiglu(m, n, k, *, db, budget=24, seed=0, time_limit=60.0, strategy=None, isolate=False, dtype="f32",
                tolerance=0.0):
    """Measures up to `budget` candidates for this SwiGLU problem (x m x k, weights n x k; fused
    vs two GEMMs, blocking, threads, precision within `tolerance`) into the SQLite store `db`.
    Returns the best as tune_gemm does."""
    desc = _libtune.swiglu_desc(m, n, k, dtype, tolerance)
    return _libtune.tune_swiglu(str(db), desc, budget, time_limit, seed, strategy, isolate)


def model_problems(config, *, tokens=(1, 16, 512), kv_len=4096, dtype="f32"):
    """The problems `tune model` derives from a Hugging Face config.json for these token
    counts: the layer's GEMMs (weights [out, in], dense or mixture-of-experts) in `dtype`, its
    gated MLPs as fused SwiGLU problems when the MLP is SwiGLU, then, when kv_len > 0, its
    attention (prefill per token count > 1 and a decode step against kv_len keys). Each is a
    dict: name, tokens, op ("gemm", "swiglu" or "attention") and args, the keyword arguments of
    tune_gemm / tune_swiglu / tune_attention for it."""
    return _libtune.model_problems(str(config), [int(t) for t in tokens], int(kv_len), dtype)


def tune_model(config, *, db, tokens=(1, 16, 512), kv_len=4096, dtype="f32", budget=24, attention_budget=None,
               swiglu_budget=None, seed=0, time_limit=60.0, strategy=None, isolate=False):
    """Tunes every problem of model_problems(config, ...) into the SQLite store `db`, in order
    (attention problems with `attention_budget` candidates, SwiGLU ones with `swiglu_budget`;
    default `budget`; 0 skips them). Returns a list of (problem, result) pairs, result as
    tune_gemm returns it."""
    out = []
    tuners = {"gemm": (tune_gemm, None), "swiglu": (tune_swiglu, swiglu_budget),
              "attention": (tune_attention, attention_budget)}
    for p in model_problems(config, tokens=tokens, kv_len=kv_len, dtype=dtype):
        tune, own_budget = tuners[p["op"]]
        n = budget if own_budget is None else own_budget
        if n == 0:
            continue
        out.append((p, tune(**p["args"], db=db, budget=n, seed=seed, time_limit=time_limit, strategy=strategy,
                            isolate=isolate)))
    return out
