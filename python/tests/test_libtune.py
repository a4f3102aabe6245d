"""libtune's Python package: tuning, lookup, GEMM and attention on NumPy arrays and PyTorch
tensors, checked against NumPy in float64."""
import numpy as np
import pytest

import libtune


def ref_gemm(a, b, trans_a=False, trans_b=False):
    a = np.swapaxes(a, -1, -2) if trans_a else a
    b = np.swapaxes(b, -1, -2) if trans_b else b
    return np.matmul(a.astype(np.float64), b.astype(np.float64))


def rel_error(c, a, b, trans_a=False, trans_b=False):
    """max |C - C_ref| / (|A||B|), the library's own GEMM error metric."""
    scale = ref_gemm(np.abs(a), np.abs(b), trans_a, trans_b)
    return float(np.max(np.abs(c - ref_gemm(a, b, trans_a, trans_b)) / np.maximum(scale, 1e-30)))


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


@pytest.fixture(scope="module")
def tuned_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("store") / "tuned.db"
    r = libtune.tune_gemm(32, 96, 64, db=db, trans_b=True, budget=4, seed=3, time_limit=30)
    assert r["measured"] >= 1 and r["median_s"] > 0 and r["template"].startswith("cpu.gemm.")
    return db, r


def test_version():
    assert libtune.__version__.count(".") == 2 and libtune.c_api_version >= 1


def test_tune_resumes_from_the_store(tuned_db):
    db, first = tuned_db
    again = libtune.tune_gemm(32, 96, 64, db=db, trans_b=True, budget=4, seed=3, time_limit=30)
    assert again["measured"] == 0 and again["reused"] >= 1
    assert (again["template"], again["config"]) == (first["template"], first["config"])


def test_lookup_exact_nearest_default(tuned_db):
    db, best = tuned_db
    d = libtune.Dispatcher(db)
    assert d.stats()["entries"] >= 1
    s = d.lookup(32, 96, 64, trans_b=True)
    assert s["source"] == "exact" and (s["template"], s["config"]) == (best["template"], best["config"])
    assert s["tuned_median_s"] > 0 and s["store"].endswith("tuned.db")
    assert d.lookup(40, 96, 64, trans_b=True)["source"] == "nearest"
    assert libtune.Dispatcher(None).lookup(32, 96, 64, trans_b=True)["source"] == "default"


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False)])
def test_gemm_matches_numpy(tuned_db, trans_a, trans_b):
    db, _ = tuned_db
    m, n, k = 32, 96, 64
    a = rand(*((k, m) if trans_a else (m, k)), seed=1)
    b = rand(*((n, k) if trans_b else (k, n)), seed=2)
    c = libtune.gemm(a, b, db=db, trans_a=trans_a, trans_b=trans_b)
    assert c.shape == (m, n) and c.dtype == np.float32
    assert rel_error(c, a, b, trans_a, trans_b) < 1e-5


def test_gemm_writes_into_out_without_copies(tuned_db):
    db, _ = tuned_db
    a, b = rand(32, 64, seed=3), rand(96, 64, seed=4)
    out = np.zeros((32, 96), np.float32)
    d = libtune.Dispatcher(db)
    assert d.gemm(a, b, out, trans_b=True) is out
    assert rel_error(out, a, b, trans_b=True) < 1e-5
    # A view into a larger C-contiguous buffer is written in place.
    big = np.zeros((2, 32, 96), np.float32)
    d.gemm(a, b, big[1], trans_b=True)
    assert np.all(big[0] == 0) and rel_error(big[1], a, b, trans_b=True) < 1e-5


def test_gemm_epilogue_and_batch():
    a, b, bias, res = rand(3, 8, 16, seed=5), rand(3, 16, 24, seed=6), rand(24, seed=7), rand(3, 8, 24, seed=8)
    c = libtune.gemm(a, b, db=None, bias=bias, residual=res, act="silu")
    z = ref_gemm(a, b) + bias
    expect = z / (1 + np.exp(-z)) + res
    assert c.shape == (3, 8, 24) and np.max(np.abs(c - expect)) < 1e-4


def test_bf16_bits():
    a32, b32 = rand(16, 32, seed=9), rand(24, 32, seed=10)
    to_bits = lambda x: (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation: exact bf16 values
    a, b = to_bits(a32), to_bits(b32)
    try:
        c = libtune.gemm(a, b, trans_b=True)
    except libtune.Error as e:
        pytest.skip(f"bf16 not supported here: {e}")
    back = lambda x: (x.astype(np.uint32) << 16).view(np.float32)
    assert rel_error(c, back(a), back(b), trans_b=True) < 1e-5


def test_bad_input_gives_clear_errors(tmp_path):
    a, b = rand(8, 16), rand(16, 24)
    with pytest.raises(libtune.DatabaseError, match="missing.db"):
        libtune.Dispatcher(tmp_path / "missing.db")
    # A NUL would cut the path short in C and name another file.
    with pytest.raises(ValueError, match="embedded null"):
        libtune.Dispatcher(str(tmp_path / "a.db") + "\0b")
    with pytest.raises(ValueError, match="embedded null"):
        libtune.tune_gemm(4, 4, 4, db=str(tmp_path / "cut.db") + "\0.ignored", budget=1)
    assert not (tmp_path / "cut.db").exists()
    with pytest.raises(TypeError, match="float32"):
        libtune.gemm(a.astype(np.float64), b)
    with pytest.raises(ValueError, match="C-contiguous"):
        libtune.gemm(np.asfortranarray(rand(8, 16)), b)
    with pytest.raises(ValueError, match="shapes do not match"):
        libtune.gemm(a, rand(17, 24))
    with pytest.raises(ValueError, match="out"):
        libtune.gemm(a, b, np.zeros((8, 25), np.float32))
    with pytest.raises(ValueError, match="read-only|writable"):
        ro = np.zeros((8, 24), np.float32)
        ro.flags.writeable = False
        libtune.gemm(a, b, ro)
    with pytest.raises(TypeError, match="NumPy array"):
        libtune.gemm([[1.0]], b)
    r = rand(8, 24)
    with pytest.raises(ValueError, match="output C overlaps input residual"):
        libtune.Dispatcher(None).gemm(a, b, r, residual=r)
    with pytest.raises(ValueError, match="dtype"):
        libtune.Dispatcher(None).lookup(8, 8, 8, dtype="f64")
    with pytest.raises(ValueError, match="dim 'm'"):
        libtune.Dispatcher(None).lookup(0, 8, 8)
    with pytest.raises(ValueError, match="budget"):
        libtune.tune_gemm(8, 8, 8, db=tmp_path / "t.db", budget=0)
    # A message quoting bytes that are not UTF-8 keeps its text.
    (tmp_path / "bad.json").write_bytes(b'{"hidden_size": 64, \xff}')
    with pytest.raises(ValueError, match="not valid JSON"):
        libtune.model_problems(tmp_path / "bad.json")


def ref_attention(q, k, v, causal=False, window=0, scale=None):
    """O, LSE and the softmax P in float64, with the library's mask convention (query i sits at
    key position i + kv_len - q_len)."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    q_len, kv_len = q.shape[2], k.shape[2]
    s = q @ np.swapaxes(k, -1, -2) * (1 / np.sqrt(q.shape[3]) if scale is None else scale)
    pos = np.arange(q_len)[:, None] + kv_len - q_len
    j = np.arange(kv_len)[None, :]
    keep = np.ones((q_len, kv_len), bool)
    if causal:
        keep &= j <= pos
    if window:
        keep &= j > pos - window
        if not causal:
            keep &= j < pos + window
    s = np.where(keep, s, -np.inf)
    lse = np.log(np.sum(np.exp(s - s.max(-1, keepdims=True)), -1)) + s.max(-1)
    p = np.exp(s - lse[..., None])
    return p @ v, lse, p


@pytest.mark.parametrize("causal,window", [(False, 0), (True, 0), (False, 3), (True, 4)])
def test_attention_matches_numpy(causal, window):
    q, k, v = rand(2, 4, 9, 16, seed=1), rand(2, 2, 13, 16, seed=2), rand(2, 2, 13, 16, seed=3)
    o_ref, lse_ref, _ = ref_attention(q, k, v, causal, window)
    lse = np.empty((2, 4, 9), np.float32)
    o = libtune.attention(q, k, v, lse=lse, causal=causal, window=window)
    assert o.shape == q.shape and o.dtype == np.float32
    np.testing.assert_allclose(o, o_ref, atol=2e-6)
    np.testing.assert_allclose(lse, lse_ref, atol=2e-6)
    out = np.zeros_like(q)
    assert libtune.attention(q, k, v, out, causal=causal, window=window) is out
    np.testing.assert_allclose(out, o_ref, atol=2e-6)


def test_attention_user_scale():
    q, k, v = rand(1, 2, 6, 16, seed=11), rand(1, 2, 9, 16, seed=12), rand(1, 2, 9, 16, seed=13)
    o = libtune.attention(q, k, v, causal=True, scale=0.7)
    np.testing.assert_allclose(o, ref_attention(q, k, v, True, scale=0.7)[0], atol=2e-6)
    assert not np.allclose(o, ref_attention(q, k, v, True)[0], atol=1e-3)  # the scale changes the result
    with pytest.raises(ValueError, match="scale"):
        libtune.attention(q, k, v, scale=-1.0)
    with pytest.raises(ValueError, match="scale"):
        libtune.attention(q, k, v, scale=0)


def test_attention_backward_matches_numpy():
    q, k, v = rand(1, 6, 7, 8, seed=4), rand(1, 2, 11, 8, seed=5), rand(1, 2, 11, 8, seed=6)
    d_o = rand(1, 6, 7, 8, seed=7)
    d = libtune.Dispatcher(None)
    lse = np.empty((1, 6, 7), np.float32)
    o = d.attention(q, k, v, lse=lse, causal=True)
    dq, dk, dv = d.attention_backward(q, k, v, o, lse, d_o, causal=True)
    _, _, p = ref_attention(q, k, v, causal=True)
    # dV = P^T dO and dP = dO V^T summed over each KV head's group; dS = P (dP - rowsum(dO O)).
    qd, kd, vd, dod = (x.astype(np.float64) for x in (q, k, v, d_o))
    group = 3
    vr, kr = np.repeat(vd, group, axis=1), np.repeat(kd, group, axis=1)
    ds = p * (dod @ np.swapaxes(vr, -1, -2) - np.sum(dod * (p @ vr), -1, keepdims=True)) / np.sqrt(8)
    dq_ref = ds @ kr
    dk_ref = (np.swapaxes(ds, -1, -2) @ qd).reshape(1, 2, group, 11, 8).sum(2)
    dv_ref = (np.swapaxes(p, -1, -2) @ dod).reshape(1, 2, group, 11, 8).sum(2)
    np.testing.assert_allclose(dq, dq_ref, atol=2e-5)
    np.testing.assert_allclose(dk, dk_ref, atol=2e-5)
    np.testing.assert_allclose(dv, dv_ref, atol=2e-5)


def test_tune_attention_then_lookup(tmp_path):
    db = tmp_path / "attention.db"
    r = libtune.tune_attention(1, 4, 1, 8, 24, 16, db=db, causal=True, budget=3, seed=1, time_limit=30)
    assert r["template"].startswith("cpu.attention.") and r["median_s"] > 0
    d = libtune.Dispatcher(db)
    sel = d.lookup_attention(1, 4, 1, 8, 24, 16, causal=True)
    assert sel["source"] == "exact" and sel["config"] == r["config"]
    q, k, v = rand(1, 4, 8, 16, seed=8), rand(1, 1, 24, 16, seed=9), rand(1, 1, 24, 16, seed=10)
    np.testing.assert_allclose(d.attention(q, k, v, causal=True), ref_attention(q, k, v, True)[0], atol=2e-6)


def test_attention_bad_input():
    q, k = rand(1, 4, 8, 16), rand(1, 2, 8, 16)
    with pytest.raises(ValueError, match="4-D"):
        libtune.attention(q[0], k[0], k[0])
    with pytest.raises(ValueError, match="shapes do not match"):
        libtune.attention(q, k, rand(1, 2, 9, 16))
    with pytest.raises(ValueError, match="kv_heads"):
        libtune.attention(rand(1, 3, 8, 16), k, k)
    with pytest.raises(ValueError, match="lse"):
        libtune.attention(q, k, k, lse=np.empty((1, 4, 9), np.float32))
    with pytest.raises(TypeError, match="float32"):
        libtune.attention(q.astype(np.float64), k, k)
    # An output on an input is refused, not computed wrongly (later query blocks still read it).
    with pytest.raises(ValueError, match="output O overlaps input Q"):
        libtune.attention(q, k, k, out=q)


def test_torch_attention(tuned_db):
    torch = pytest.importorskip("torch")
    q, k, v = (torch.rand(1, 8, 5, 32) - 0.5), (torch.rand(1, 2, 12, 32) - 0.5), (torch.rand(1, 2, 12, 32) - 0.5)
    o = libtune.attention(q, k, v)
    assert isinstance(o, torch.Tensor)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k.repeat_interleave(4, 1), v.repeat_interleave(4, 1))
    torch.testing.assert_close(o, ref, rtol=1e-4, atol=1e-5)


def test_torch_tensors_zero_copy(tuned_db):
    torch = pytest.importorskip("torch")
    db, _ = tuned_db
    a, w = torch.rand(32, 64) - 0.5, torch.rand(96, 64) - 0.5
    out = torch.empty(32, 96)
    r = libtune.gemm(a, w, out, db=db, trans_b=True)
    assert r is out
    torch.testing.assert_close(out, a @ w.T, rtol=1e-4, atol=1e-5)
    c = libtune.gemm(a, w, db=db, trans_b=True)
    assert isinstance(c, torch.Tensor)
    torch.testing.assert_close(c, a @ w.T, rtol=1e-4, atol=1e-5)


def test_model_problems_and_tune_model(tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"model_type": "gemma2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,'
                      ' "head_dim": 32, "intermediate_size": 96, "hidden_activation": "gelu_pytorch_tanh",'
                      ' "sliding_window": 16, "query_pre_attn_scalar": 64}')
    problems = libtune.model_problems(config, tokens=(1, 4), kv_len=24)
    names = [(p["name"], p["tokens"]) for p in problems]
    assert names[:4] == [("qkv_proj", 1), ("o_proj", 1), ("mlp_gate_up", 1), ("mlp_down", 1)]
    assert problems[0]["args"] == {"m": 1, "n": 4 * 32 + 2 * 2 * 32, "k": 64, "batch": 1, "trans_a": False,
                                   "trans_b": True, "dtype": "f32"}
    # Gemma 2 mixes full and windowed layers: both variants of prefill and decode.
    attention = {p["name"]: p["args"] for p in problems if p["op"] == "attention"}
    assert set(attention) == {"attention_prefill", "attention_prefill_local", "attention_decode",
                              "attention_decode_local"}
    assert attention["attention_prefill_local"]["window"] == 16 and attention["attention_prefill"]["window"] == 0
    assert attention["attention_decode"]["kv_len"] == 24 and attention["attention_decode"]["scale"] == 0.125
    assert all(p["op"] == "gemm" for p in libtune.model_problems(config, tokens=(4,), kv_len=0))
    assert libtune.model_problems(config, tokens=(4,), dtype="bf16")[0]["args"]["dtype"] == "bf16"

    db = tmp_path / "model.db"
    results = libtune.tune_model(config, db=db, tokens=(4,), kv_len=24, budget=2, time_limit=30)
    assert [p["name"] for p, _ in results] == [p["name"] for p in libtune.model_problems(config, tokens=(4,), kv_len=24)]
    assert all(r["median_s"] > 0 for _, r in results)
    d = libtune.Dispatcher(db)
    assert d.lookup(4, 96, 64, trans_b=True)["source"] == "exact"

    with pytest.raises(ValueError, match="nonexistent"):
        libtune.model_problems(tmp_path / "nonexistent.json")
    with pytest.raises(ValueError, match="tokens"):
        libtune.model_problems(config, tokens=())
    with pytest.raises(ValueError, match="dtype"):
        libtune.model_problems(config, dtype="f8")
    bad = tmp_path / "bad.json"
    bad.write_text('{"hidden_size": 64, "num_attention_heads": 4, "kv_lora_rank": 8}')
    with pytest.raises(ValueError, match="latent attention"):
        libtune.model_problems(bad)


def test_attention_on_bf16_kv(tmp_path):
    to_bits = lambda x: (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation: exact bf16 values
    back = lambda x: (x.astype(np.uint32) << 16).view(np.float32)
    q32, k32, v32 = rand(1, 8, 1, 64, seed=21), rand(1, 2, 40, 64, seed=22), rand(1, 2, 40, 64, seed=23)
    q, k, v = to_bits(q32), to_bits(k32), to_bits(v32)
    db = tmp_path / "bf16.db"
    r = libtune.tune_attention(1, 8, 2, 1, 40, 64, db=db, causal=True, dtype="bf16", budget=3, time_limit=30)
    assert r["template"] == "cpu.attention.fused" and r["median_s"] > 0
    d = libtune.Dispatcher(db)
    assert d.lookup_attention(1, 8, 2, 1, 40, 64, causal=True, dtype="bf16")["source"] == "exact"
    assert d.lookup_attention(1, 8, 2, 1, 40, 64, causal=True)["source"] != "exact"  # f32: a problem of its own
    o = d.attention(q, k, v, causal=True)
    assert o.dtype == np.float32
    np.testing.assert_allclose(o, ref_attention(back(q), back(k), back(v), True)[0], atol=2e-6)
    with pytest.raises(TypeError, match="all be float32, or all bf16"):
        d.attention(q, k32, v, causal=True)
    with pytest.raises(ValueError, match="dtype"):
        libtune.tune_attention(1, 8, 2, 1, 40, 64, db=db, dtype="f8")


def test_attention_on_paged_kv(tmp_path):
    # K and V scattered over a pool larger than the batch needs, as a serving engine keeps them.
    batch, heads, kv_heads, kv_len, hd, page = 2, 8, 2, 37, 32, 16
    pages = (kv_len + page - 1) // page
    q, k, v = rand(batch, heads, 1, hd, seed=31), rand(batch, kv_heads, kv_len, hd, seed=32), rand(batch, kv_heads, kv_len, hd, seed=33)
    pool = batch * pages + 4
    table = np.random.default_rng(5).permutation(pool)[: batch * pages].astype(np.int32).reshape(batch, pages)
    k_pool = np.zeros((pool, page, kv_heads, hd), np.float32)
    v_pool = np.zeros_like(k_pool)
    for b in range(batch):
        for j in range(kv_len):
            k_pool[table[b, j // page], j % page] = k[b, :, j]
            v_pool[table[b, j // page], j % page] = v[b, :, j]
    db = tmp_path / "paged.db"
    r = libtune.tune_attention(batch, heads, kv_heads, 1, kv_len, hd, db=db, causal=True, page=page, budget=3,
                               time_limit=30)
    assert r["template"] == "cpu.attention.fused"
    d = libtune.Dispatcher(db)
    assert d.lookup_attention(batch, heads, kv_heads, 1, kv_len, hd, causal=True, page=page)["source"] == "exact"
    o = d.attention_paged(q, k_pool, v_pool, table, kv_len, causal=True)
    np.testing.assert_allclose(o, ref_attention(q, k, v, True)[0], atol=2e-6)
    to_bits = lambda x: (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation: exact bf16 values
    back = lambda x: (x.astype(np.uint32) << 16).view(np.float32)
    o16 = d.attention_paged(to_bits(q), to_bits(k_pool), to_bits(v_pool), table, kv_len, causal=True)
    kb = np.stack([[back(to_bits(k_pool))[table[b, j // page], j % page] for j in range(kv_len)] for b in range(batch)], 0)
    vb = np.stack([[back(to_bits(v_pool))[table[b, j // page], j % page] for j in range(kv_len)] for b in range(batch)], 0)
    np.testing.assert_allclose(o16, ref_attention(back(to_bits(q)), kb.transpose(0, 2, 1, 3), vb.transpose(0, 2, 1, 3),
                                                  True)[0], atol=2e-6)
    bad = table.copy()
    bad[1, 0] = pool
    with pytest.raises(ValueError, match="block table entry"):  # the caller's table: a bad argument
        d.attention_paged(q, k_pool, v_pool, bad, kv_len, causal=True)
    with pytest.raises(ValueError, match="block_table: expected shape"):
        d.attention_paged(q, k_pool, v_pool, np.ascontiguousarray(table[:, :1]), kv_len, causal=True)
    with pytest.raises(TypeError, match="int32"):
        d.attention_paged(q, k_pool, v_pool, table.astype(np.int64), kv_len, causal=True)


def ref_swiglu(x, w_gate, w_up):
    g, u = ref_gemm(x, w_gate, trans_b=True), ref_gemm(x, w_up, trans_b=True)
    return g / (1 + np.exp(-g)) * u


def test_swiglu_tuned_dispatched_f32_bf16_and_torch(tmp_path):
    x, wg, wu = rand(5, 48, seed=31), rand(40, 48, seed=32), rand(40, 48, seed=33)
    db = tmp_path / "swiglu.db"
    r = libtune.tune_swiglu(5, 40, 48, db=db, budget=3, time_limit=30)
    assert r["template"] == "cpu.swiglu.blocked" and r["median_s"] > 0
    d = libtune.Dispatcher(db)
    sel = d.lookup_swiglu(5, 40, 48)
    assert sel["source"] == "exact" and sel["config"] == r["config"]
    out = d.swiglu(x, wg, wu)
    assert out.shape == (5, 40) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref_swiglu(x, wg, wu), rtol=1e-5, atol=1e-5)
    given = np.empty((5, 40), dtype=np.float32)
    assert d.swiglu(x, wg, wu, given) is given
    np.testing.assert_allclose(libtune.swiglu(x, wg, wu, db=None), ref_swiglu(x, wg, wu), rtol=1e-5, atol=1e-5)

    to_bits = lambda a: (a.view(np.uint32) >> 16).astype(np.uint16)  # truncation: exact bf16 values
    back = lambda a: (a.astype(np.uint32) << 16).view(np.float32)
    xb, gb, ub = to_bits(x), to_bits(wg), to_bits(wu)
    try:
        ob = d.swiglu(xb, gb, ub)
    except libtune.Error as e:
        pytest.skip(f"bf16 not supported here: {e}")
    assert d.lookup_swiglu(5, 40, 48, dtype="bf16")["source"] != "exact"  # a problem of its own
    np.testing.assert_allclose(ob, ref_swiglu(back(xb), back(gb), back(ub)), rtol=1e-5, atol=1e-5)

    with pytest.raises(ValueError, match="shapes do not match"):
        d.swiglu(x, wg, wu[:39])
    with pytest.raises(TypeError, match="float32, or both bf16"):
        d.swiglu(x, gb, ub)
    with pytest.raises(TypeError, match="one dtype"):
        d.swiglu(x, wg, ub)

    torch = pytest.importorskip("torch")
    tx, tg, tu = torch.from_numpy(x), torch.from_numpy(wg), torch.from_numpy(wu)
    to = d.swiglu(tx, tg, tu)
    assert isinstance(to, torch.Tensor)
    np.testing.assert_allclose(to.numpy(), ref_swiglu(x, wg, wu), rtol=1e-5, atol=1e-5)


def test_model_problems_include_swiglu_for_gated_silu_mlps(tmp_path):
    config = tmp_path / "llama.json"
    config.write_text('{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,'
                      ' "intermediate_size": 96, "hidden_act": "silu"}')
    problems = libtune.model_problems(config, tokens=(1, 4), kv_len=0)
    swiglu = [p for p in problems if p["op"] == "swiglu"]
    assert [(p["name"], p["tokens"]) for p in swiglu] == [("mlp_swiglu", 1), ("mlp_swiglu", 4)]
    assert swiglu[1]["args"] == {"m": 4, "n": 96, "k": 64, "dtype": "f32"}
    db = tmp_path / "llama.db"
    results = libtune.tune_model(config, db=db, tokens=(4,), kv_len=0, budget=2, swiglu_budget=2, time_limit=30)
    assert [p["op"] for p, _ in results].count("swiglu") == 1
    assert libtune.Dispatcher(db).lookup_swiglu(4, 96, 64)["source"] == "exact"
    skipped = libtune.tune_model(config, db=db, tokens=(4,), kv_len=0, budget=2, swiglu_budget=0, time_limit=30)
    assert all(p["op"] == "gemm" for p, _ in skipped)
