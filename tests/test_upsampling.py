"""ConvTranspose2D and Upsample: kernel paths against the reference, gradcheck, the layer
contract (config, checkpoints, summary, errors), the reference's signatures; against
PyTorch when it is installed."""
import inspect

import numpy as np
import pytest

import minicnn
import minicnn.reference as R
from minicnn import ConvTranspose2D, Upsample, functional as F, gradcheck


def random_config(rng):
    """(groups, in, out, kernel, stride, padding, output_padding, dilation, input HxW)."""
    g = int(rng.integers(1, 4))
    cin, cout = g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3))
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    p = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    op = tuple(int(rng.integers(0, max(s[a], d[a]))) for a in (0, 1))
    hw = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    return g, cin, cout, k, s, p, op, d, hw


def _valid_configs(seed, count):
    rng, out = np.random.default_rng(seed), []
    while len(out) < count:
        g, cin, cout, k, s, p, op, d, hw = cfg = random_config(rng)
        if min((hw[a] - 1) * s[a] - 2 * p[a] + d[a] * (k[a] - 1) + op[a] + 1
               for a in (0, 1)) >= 1:
            out.append(cfg)
    return out


@pytest.mark.parametrize("cfg", _valid_configs(1, 25), ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_transpose_matches_reference(cfg, dtype):
    g, cin, cout, k, s, p, op, d, hw = cfg
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, cin) + hw).astype(dtype)
    w = rng.standard_normal((cin, cout // g) + k).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    out, cache = F.conv_transpose2d_forward(x, w, b, s, p, op, g, d)
    ref, ref_cache = R.conv_transpose2d_forward(x, w, b, s, p, op, g, d)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    assert out.dtype == dtype and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    dout = rng.standard_normal(out.shape).astype(dtype)
    for fast, slow in zip(F.conv_transpose2d_backward(dout, cache),
                          R.conv_transpose2d_backward(dout, ref_cache)):
        np.testing.assert_allclose(fast, slow, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("cfg", _valid_configs(5, 20), ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_column_moves_equal_the_padded_copies(cfg, dtype):
    """The transposed convolution's column moves cut the padding inside their loops; their
    oracle is conv.pyx's im2col and col2im on an explicitly padded copy (the gather is a
    copy: the same bits; the scatter starts from the bias: the same sums in another order)."""
    from minicnn._kernels import conv as conv_kernels
    from minicnn._kernels import conv_transpose as kernels

    _, cin, cout, k, s, p, op, d, hw = cfg
    oh, ow = F.conv_transpose2d_output_hw(hw, k, s, p, op, d)
    rng = np.random.default_rng(4)
    rows = (cout * k[0] * k[1], 3, hw[0] * hw[1])
    dout = rng.standard_normal((3, cout, oh, ow)).astype(dtype)
    full = np.zeros((3, cout, oh + 2 * p[0], ow + 2 * p[1]), dtype)
    full[:, :, p[0]:p[0] + oh, p[1]:p[1] + ow] = dout
    want = np.empty(rows, dtype)
    conv_kernels.im2col(full, want, *k, *s, *d, hw[1], 1)
    got = np.full(rows, np.nan, dtype)
    kernels.gather_columns(dout, got, *k, *s, *d, *p, hw[1], 2)
    np.testing.assert_array_equal(got, want)

    cols = rng.standard_normal(rows).astype(dtype)
    bias = rng.standard_normal(cout).astype(dtype)
    full[...] = 0
    conv_kernels.col2im(cols, full, *k, *s, *d, hw[1], 1)
    want = full[:, :, p[0]:p[0] + oh, p[1]:p[1] + ow] + bias.reshape(1, -1, 1, 1)
    got = np.full((3, cout, oh, ow), np.nan, dtype)
    kernels.scatter_columns(cols, bias, got, *k, *s, *d, *p, hw[1], 2)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("cfg", _valid_configs(3, 4), ids=str)
def test_conv_transpose_gradcheck(cfg):
    g, cin, cout, k, s, p, op, d, hw = cfg
    layer = ConvTranspose2D(cin, cout, k, s, p, op, g, True, d, dtype=np.float64, rng=0)
    layer.params["bias"][...] = np.arange(cout)
    x = np.random.default_rng(4).standard_normal((2, cin) + hw)
    assert gradcheck(layer, x)


def test_conv_transpose_inverts_the_convolution_shape():
    conv = minicnn.Conv2D(3, 5, 3, stride=2, padding=1)
    up = ConvTranspose2D(5, 3, 3, stride=2, padding=1, output_padding=1)
    x = np.zeros((1, 3, 8, 8), np.float32)
    assert up.forward(conv.forward(x)).shape == x.shape
    assert up.output_shape((5, 4, 4)) == (3, 8, 8)
    assert up.macs((5, 4, 4)) == 4 * 4 * 5 * 3 * 9


def test_conv_transpose_is_the_adjoint_of_conv2d():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 3, 3, 3))      # conv: 3 -> 4; transposed: 4 -> 3
    x = rng.standard_normal((2, 3, 7, 7))
    y = rng.standard_normal((2, 4, 3, 3))
    conv = F.conv2d(x, w, stride=2, dilation=1)
    up = F.conv_transpose2d(y, w, stride=2)
    assert up.shape == x.shape
    np.testing.assert_allclose(np.sum(conv * y), np.sum(x * up), rtol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    ({"output_padding": 2, "stride": 2}, "output_padding must be smaller than stride or dilation"),
    ({"groups": 2, "in_channels": 3}, "groups=2 must divide in_channels=3"),
    ({"stride": 0}, "stride must be >= 1"),
    ({"padding": -1}, "padding must be >= 0"),
    ({"bias": 1}, "bias must be True or False"),
    ({"weight_init": "zero"}, "weight_init must be one of"),
])
def test_conv_transpose_bad_arguments_are_named(kwargs, match):
    args = dict(in_channels=4, out_channels=2, kernel_size=3)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        ConvTranspose2D(**args)


def test_conv_transpose_bad_inputs_are_named():
    layer = ConvTranspose2D(4, 2, 3, padding=3)
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(4->2.*expected input \(N, 4, H, W\)"):
        layer.forward(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="padding=.* removes more than the kernel adds"):
        layer.forward(np.zeros((1, 4, 2, 2), np.float32))
    with pytest.raises(AttributeError, match="fixed"):
        layer.stride = 2
    layer.forward(np.zeros((1, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match="dout must have shape"):
        layer.backward(np.zeros((1, 2, 5, 5)))


@pytest.mark.parametrize("scale", [1, 2, (2, 3), 3.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_upsample_matches_reference_and_gradcheck(scale, dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    layer = Upsample(scale)
    out = layer.forward(x)
    np.testing.assert_array_equal(out, R.upsample_nearest(x, scale))
    assert out.dtype == dtype
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, R.upsample_nearest_backward(dout, scale, x.shape, dtype),
                               rtol=1e-6, atol=1e-5)
    if dtype == np.float64:
        assert gradcheck(layer, x)


def test_upsample_contract_and_errors():
    layer = Upsample((2, 3))
    assert repr(layer) == "Upsample(scale_factor=(2, 3))"
    assert layer.output_shape((4, 5, 6)) == (4, 10, 18)
    with pytest.raises(ValueError, match="mode must be one of"):
        Upsample(2, mode="bicubic")
    with pytest.raises(ValueError, match="align_corners only applies to mode='bilinear'"):
        Upsample(2, align_corners=False)
    assert repr(Upsample(2, "bilinear", True)) == ("Upsample(scale_factor=2, mode='bilinear', "
                                                   "align_corners=True)")
    with pytest.raises(TypeError, match="scale_factor must be an int or a pair"):
        Upsample(1.5)
    with pytest.raises(ValueError, match="scale_factor must be >= 1"):
        Upsample(0)
    with pytest.raises(ValueError, match=r"Upsample\(scale_factor=\(2, 3\)\): expected a 4-d"):
        layer.forward(np.zeros((2, 3), np.float32))


def test_decoder_saves_loads_and_summarises(tmp_path):
    model = minicnn.Sequential(minicnn.Conv2D(1, 4, 3, stride=2, padding=1),
                               minicnn.BatchNorm2D(4), minicnn.ReLU(),
                               ConvTranspose2D(4, 2, 3, stride=2, padding=1, output_padding=1,
                                               groups=2),
                               Upsample(2), minicnn.Conv2D(2, 1, 1),
                               Upsample(1, "bilinear", True))
    x = np.random.default_rng(7).standard_normal((3, 1, 8, 8)).astype(np.float32)
    model.forward(x)
    model.backward(np.ones((3, 1, 16, 16), np.float32))
    model.save(tmp_path / "d.npz")
    loaded = minicnn.load(tmp_path / "d.npz")
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.forward(x, training=False),
                                  model.forward(x, training=False))
    table = str(model.summary((1, 8, 8), print_fn=None))
    assert "ConvTranspose2D" in table and "Upsample" in table and "(1, 16, 16)" in table


NEW_OPS = ["batch_norm", "batch_norm_forward", "batch_norm_backward", "conv_transpose2d",
           "conv_transpose2d_forward", "conv_transpose2d_backward", "conv_transpose2d_args",
           "conv_transpose2d_output_hw", "upsample_args", "upsample_nearest",
           "upsample_nearest_backward", "upsample_bilinear", "upsample_bilinear_backward"]


@pytest.mark.parametrize("name", NEW_OPS)
def test_reference_signature_matches_functional(name):
    def params(f):
        return [(p.name, p.default) for p in inspect.signature(f).parameters.values()]
    assert params(getattr(R, name)) == params(getattr(F, name))


torch_configs = _valid_configs(11, 40)


@pytest.mark.parametrize("cfg", torch_configs, ids=str)
def test_conv_transpose_against_pytorch(cfg):
    torch = pytest.importorskip("torch")
    g, cin, cout, k, s, p, op, d, hw = cfg
    rng = np.random.default_rng(8)
    layer = ConvTranspose2D(cin, cout, k, s, p, op, g, True, d, dtype=np.float64, rng=1)
    layer.params["bias"][...] = rng.standard_normal(cout)
    twin = torch.nn.ConvTranspose2d(cin, cout, k, s, p, op, g, True, d, dtype=torch.float64)
    twin.weight.data = torch.tensor(layer.params["weight"])
    twin.bias.data = torch.tensor(layer.params["bias"])
    x = rng.standard_normal((2, cin) + hw)
    xt = torch.tensor(x, requires_grad=True)
    out, ot = layer.forward(x), twin(xt)
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-9, atol=1e-9)
    dout = rng.standard_normal(out.shape)
    ot.backward(torch.tensor(dout))
    np.testing.assert_allclose(layer.backward(dout), xt.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(layer.grads["weight"], twin.weight.grad.numpy(), atol=1e-9)
    np.testing.assert_allclose(layer.grads["bias"], twin.bias.grad.numpy(), atol=1e-9)


@pytest.mark.parametrize("scale", [2, (1, 3), (3, 2)])
@pytest.mark.parametrize("mode,align", [("nearest", None), ("bilinear", None),
                                        ("bilinear", True)])
def test_upsample_against_pytorch(scale, mode, align):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(9).standard_normal((2, 3, 4, 5))
    xt = torch.tensor(x, requires_grad=True)
    ot = torch.nn.Upsample(scale_factor=scale, mode=mode, align_corners=align)(xt)
    layer = Upsample(scale, mode, align)
    np.testing.assert_allclose(layer.forward(x), ot.detach().numpy(), rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(10).standard_normal(ot.shape)
    ot.backward(torch.tensor(dout))
    np.testing.assert_allclose(layer.backward(dout), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("scale,hw", [(2, (3, 4)), ((3, 1), (1, 2)), ((2, 3), (4, 1))])
def test_bilinear_matches_reference_and_gradcheck(align, scale, hw):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 2) + hw)
    layer = Upsample(scale, "bilinear", align)
    out = layer.forward(x)
    np.testing.assert_allclose(out, R.upsample_bilinear(x, scale, align), rtol=1e-12, atol=1e-14)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(layer.backward(dout),
                               R.upsample_bilinear_backward(dout, scale, x.shape, align),
                               rtol=1e-12, atol=1e-14)
    assert gradcheck(layer, x)
    assert layer.forward(x.astype(np.float32)).dtype == np.float32


def test_conv_transpose_workspace_survives_an_inference_forward():
    """A workspace keeps the temporaries between training calls; an inference forward with
    the same workspace (another input size too) must leave the training cache intact."""
    rng = np.random.default_rng(6)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    x = rng.standard_normal((5, 4, 6, 6)).astype(np.float32)
    args = ((2, 2), (1, 1), (1, 1), 1, (1, 1))
    out, cache = F.conv_transpose2d_forward(x, w, None, *args)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    want = F.conv_transpose2d_backward(dout, cache)
    ws = {}
    _, cache = F.conv_transpose2d_forward(x, w, None, *args, workspace=ws)
    assert ws, "a training forward keeps its temporaries in the workspace"
    with pytest.raises(TypeError, match="conv_transpose2d: workspace must be None or a dict, "
                                        "got list"):
        F.conv_transpose2d_forward(x, w, None, *args, workspace=[])
    for shape in ((5, 4, 6, 6), (2, 4, 9, 9)):
        F.conv_transpose2d_forward(rng.standard_normal(shape).astype(np.float32), w, None,
                                   *args, training=False, workspace=ws)
    for got, expected in zip(F.conv_transpose2d_backward(dout, cache), want):
        np.testing.assert_array_equal(got, expected)
