"""glibc's malloc keeps freed activations for the next step (minicnn/_malloc.py)."""
import os
import platform
import subprocess
import sys

import pytest

GLIBC = platform.libc_ver()[0] == "glibc" and sys.maxsize > 2**32

# A LeNet-5 training step at batch 64, as the minicnn command runs it; prints the page
# faults per step after a warm-up, then what config() says about malloc.
STEPS = """
import resource
import minicnn
import numpy as np
from minicnn.architectures import build
model = build("lenet5", rng=np.random.default_rng(0))
loss = minicnn.SoftmaxCrossEntropy()
opt = minicnn.SGD(model.parameters(), lr=0.01, momentum=0.9)
rng = np.random.default_rng(1)
x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
y = rng.integers(0, 10, 64)
def step():
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    opt.step()
for _ in range(20):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50)
print(minicnn._config.config()["malloc"])
"""


def run(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MINICNN_TUNE_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                        "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", STEPS], env={**env, **extra}, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    return float(out[0]), out[1]


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_training_steps_do_not_fault_their_activations_back_in(tmp_path):
    # glibc's own thresholds gave ~190 faults a step here (the freed top of the heap went
    # back to the kernel every step); with minicnn's, under one.
    faults, state = run(tmp_path)
    assert state == "mmap above 32 MiB, trim above 64 MiB"
    assert faults < 10, f"{faults} page faults per LeNet-5 training step"


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_users_malloc_settings_win(tmp_path):
    assert run(tmp_path, MINICNN_TUNE_MALLOC="0")[1] == "left alone (MINICNN_TUNE_MALLOC=0)"
    assert run(tmp_path, MALLOC_TRIM_THRESHOLD_="131072")[1] == "left alone (MALLOC_*_THRESHOLD_ set)"
    assert run(tmp_path, GLIBC_TUNABLES="glibc.malloc.trim_threshold=131072")[1] == \
        "left alone (MALLOC_*_THRESHOLD_ set)"
