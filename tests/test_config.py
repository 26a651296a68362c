"""Build configuration and thread control."""
import os
import subprocess
import sys

import pytest

import minicnn
from minicnn import _config


def test_set_and_get_num_threads():
    old = minicnn.get_num_threads()
    try:
        minicnn.set_num_threads(1)
        assert minicnn.get_num_threads() == 1
    finally:
        minicnn.set_num_threads(old)
    for bad in (0, -1, 1.5, "2", True, 4097, 2**31):
        with pytest.raises(ValueError, match="n must be an integer from 1 to 4096"):
            minicnn.set_num_threads(bad)
    minicnn.set_num_threads(4096)           # allowed (each kernel's scratch is per thread)
    minicnn.set_num_threads(old)


@pytest.mark.parametrize("env,expected", [
    ({"MINICNN_NUM_THREADS": "3", "OMP_NUM_THREADS": "5"}, 3),
    ({"OMP_NUM_THREADS": "5,2"}, 5),
    ({}, os.cpu_count()),
])
def test_threads_from_env(monkeypatch, env, expected):
    monkeypatch.delenv("MINICNN_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert _config._threads_from_env() == expected


def test_bad_thread_env(monkeypatch):
    monkeypatch.setenv("MINICNN_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="MINICNN_NUM_THREADS must be a positive integer"):
        _config._threads_from_env()
    monkeypatch.setenv("MINICNN_NUM_THREADS", str(2**31))
    with pytest.raises(ValueError, match="MINICNN_NUM_THREADS must be an integer from 1 to 4096"):
        _config._threads_from_env()
    # OMP_NUM_THREADS is meant for every OpenMP library: a large value is capped, not refused
    monkeypatch.delenv("MINICNN_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "5000")
    assert _config._threads_from_env() == _config.MAX_THREADS
    monkeypatch.setenv("OMP_NUM_THREADS", "0")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS must be an integer from 1 to 4096"):
        _config._threads_from_env()


def test_info_command(tmp_path):
    out = subprocess.run([sys.executable, "-m", "minicnn", "info"], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert f"minicnn     {minicnn.__version__}" in out
    assert "numpy" in out and "openmp" in out and "threads" in out
    assert "OPENBLAS_CORETYPE=" in out and "malloc" in out


@pytest.mark.skipif(os.environ.get("MINICNN_EXPECT_OPENMP") != "1",
                    reason="set MINICNN_EXPECT_OPENMP=1 where the compiler has OpenMP (CI does)")
def test_openmp_was_not_lost():
    assert minicnn._config.openmp_enabled(), "the kernels were built without OpenMP"


@pytest.mark.skipif(os.environ.get("MINICNN_EXPECT_DEBUG") != "1",
                    reason="set MINICNN_EXPECT_DEBUG=1 when testing a MINICNN_DEBUG=1 build")
def test_debug_build_checks_bounds():
    assert minicnn._config.config()["boundscheck"]


def test_blas_thread_timeout_is_set_when_minicnn_loads_before_numpy(tmp_path):
    # run outside the checkout, so that the installed package is imported, not the sources
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    code = "import {} minicnn; print(minicnn._config.config()['openblas_thread_timeout'])"
    first, late = (subprocess.run([sys.executable, "-c", code.format(before)], env=env,
                                  cwd=tmp_path, capture_output=True, text=True,
                                  check=True).stdout.strip() for before in ("", "numpy,"))
    assert first == "4" and late == "not applied (NumPy loaded first)"


def test_openmp_spin_count_default_and_user_setting_wins(tmp_path):
    """minicnn asks libgomp's threads to spin briefly before sleeping (waking them cost
    25-70 us a kernel; benchmarks/thread_settings.py measures it); a user's own
    GOMP_SPINCOUNT or OMP_WAIT_POLICY is kept."""
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    code = ("import minicnn; c = minicnn._config.config(); "
            "print(c['gomp_spincount'], c['omp_wait_policy'])")

    def run(**extra):
        return subprocess.run([sys.executable, "-c", code], env={**base, **extra}, cwd=tmp_path,
                              capture_output=True, text=True, check=True).stdout.split()

    assert run() == ["3000", "PASSIVE"]
    assert run(GOMP_SPINCOUNT="0", OMP_WAIT_POLICY="ACTIVE") == ["0", "ACTIVE"]


def test_blas_hint_names_the_fix_only_when_avx512_is_idle(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    hint = _config.blas_hint("Haswell", ["sse2", "avx2", "avx512f"])
    assert "AVX-512" in hint and "unset OPENBLAS_CORETYPE" in hint
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert "try OPENBLAS_CORETYPE=SkylakeX" in _config.blas_hint("Zen", ["avx512f"])
    assert _config.blas_hint("SkylakeX", ["avx512f"]) == ""
    assert _config.blas_hint("Haswell", ["avx2"]) == ""
    assert _config.blas_hint("", ["avx512f"]) == ""
