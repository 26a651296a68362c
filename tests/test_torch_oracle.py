"""Whole networks against PyTorch, when it is installed: same weights, same batches, same steps."""
import numpy as np
import pytest

import minicnn
from minicnn.architectures import dwsep, lenet5
from minicnn.interop import to_torch

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")
nn = torch.nn


@pytest.mark.parametrize("build", [lenet5, dwsep])
def test_sgd_training_matches_pytorch_step_for_step(build):
    model = build(rng=np.random.default_rng(0)).astype(np.float64)
    twin = to_torch(model)
    opt = minicnn.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
    topt = torch.optim.SGD(twin.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
    loss = minicnn.SoftmaxCrossEntropy()
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = rng.standard_normal((8, 1, 28, 28))
        y = rng.integers(0, 10, 8)
        value = loss.forward(model.forward(x), y)
        model.backward(loss.backward(), input_grad=False)
        opt.step()
        topt.zero_grad()
        tvalue = nn.functional.cross_entropy(twin(torch.tensor(x)), torch.tensor(y))
        tvalue.backward()
        topt.step()
        assert value == pytest.approx(tvalue.item(), rel=1e-12)
    theirs = [p.detach().numpy() for p in twin.parameters()]
    for ours, other in zip([p.value for p in model.parameters()], theirs):
        np.testing.assert_allclose(ours, other, rtol=1e-10, atol=1e-12)
