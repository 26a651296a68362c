"""Whole networks against PyTorch, when it is installed: same weights, same batches, same steps."""
import numpy as np
import pytest

import minicnn
from minicnn.architectures import dwsep, lenet5

torch = pytest.importorskip("torch")
nn = torch.nn


def torch_copy(model):
    """The PyTorch twin of a minicnn Sequential (for the layers these tests use), same weights."""
    out = []
    for layer in model:
        cfg = layer.get_config()
        name = type(layer).__name__
        if name == "Conv2D":
            pad = cfg["padding"]
            mode = {"zeros": "zeros", "reflect": "reflect"}[cfg["padding_mode"]]
            t = nn.Conv2d(cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"],
                          stride=cfg["stride"], padding=pad, groups=cfg["groups"], padding_mode=mode)
        elif name == "Dense":
            t = nn.Linear(cfg["in_features"], cfg["out_features"])
        elif name == "MaxPool2D":
            t = nn.MaxPool2d(cfg["kernel_size"], cfg["stride"], cfg["padding"])
        elif name == "AvgPool2D":
            t = nn.AvgPool2d(cfg["kernel_size"], cfg["stride"], cfg["padding"])
        else:
            t = {"ReLU": nn.ReLU, "Flatten": nn.Flatten}[name]()
        if layer.params:
            t.weight.data = torch.tensor(layer.params["weight"])
            t.bias.data = torch.tensor(layer.params["bias"])
        out.append(t)
        if cfg.get("activation") == "relu":        # Conv2D(activation='relu')
            out.append(nn.ReLU())
    return nn.Sequential(*out)


@pytest.mark.parametrize("build", [lenet5, dwsep])
def test_sgd_training_matches_pytorch_step_for_step(build):
    model = build(rng=np.random.default_rng(0)).astype(np.float64)
    twin = torch_copy(model).double()
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
