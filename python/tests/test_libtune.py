"""libtune's Python package: tuning, lookup and GEMM on NumPy arrays and PyTorch tensors,
checked against NumPy in float64."""
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
    with pytest.raises(ValueError, match="dtype"):
        libtune.Dispatcher(None).lookup(8, 8, 8, dtype="f64")
    with pytest.raises(ValueError, match="dim 'm'"):
        libtune.Dispatcher(None).lookup(0, 8, 8)
    with pytest.raises(ValueError, match="budget"):
        libtune.tune_gemm(8, 8, 8, db=tmp_path / "t.db", budget=0)


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
