"""model.explain(): the notes' worked examples as exact text, and every formula it writes
evaluates to the number it shows, which is the size the layers really compute."""
import math
import re

import numpy as np
import pytest

from minicnn import (AvgPool2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D, Pad, ReLU,
                     Sequential, cli)
from minicnn.architectures import lenet5
from minicnn.explain import Explanation

HEADER = """explain: one input of shape (1, 5, 5)
X input size, K kernel, S stride, D dilation, P padding (per axis: H then W)
input: receptive field r = 1, jump j = 1
"""


def test_5x5_input_3x3_kernel_gives_3x3():
    text = Sequential(Conv2D(1, 1, 3)).explain((1, 5, 5))
    assert text == HEADER + """
layer 0: Conv2D(1->1, kernel_size=3)
  input (1, 5, 5) -> output (1, 3, 3)
  output size = floor((X + P_before + P_after - D*(K-1) - 1) / S) + 1
    H, W: floor((5 + 0 + 0 - 1*(3-1) - 1) / 1) + 1 = 3
  parameters = Cout*(Cin/groups)*K^2 + Cout = 1*(1/1)*3^2 + 1 = 10
  MACs = OH*OW*K^2*Cin*Cout/groups = 3*3*3^2*1*1/1 = 81
  receptive field r = r_in + (K-1)*D*j_in, jump j = j_in*S
    H, W: r = 1 + (3-1)*1*1 = 3, j = 1*1 = 1

total: 10 parameters, 81 MACs per image, receptive field 3 x 3 input pixels (jump 1)"""


def test_stride_2_gives_2x2():
    text = Sequential(Conv2D(1, 1, 3, stride=2, bias=False)).explain((1, 5, 5))
    assert text == HEADER + """
layer 0: Conv2D(1->1, kernel_size=3, stride=2, bias=False)
  input (1, 5, 5) -> output (1, 2, 2)
  output size = floor((X + P_before + P_after - D*(K-1) - 1) / S) + 1
    H, W: floor((5 + 0 + 0 - 1*(3-1) - 1) / 2) + 1 = 2
  parameters = Cout*(Cin/groups)*K^2 = 1*(1/1)*3^2 = 9
  MACs = OH*OW*K^2*Cin*Cout/groups = 2*2*3^2*1*1/1 = 36
  receptive field r = r_in + (K-1)*D*j_in, jump j = j_in*S
    H, W: r = 1 + (3-1)*1*1 = 3, j = 1*2 = 2

total: 9 parameters, 36 MACs per image, receptive field 3 x 3 input pixels (jump 2)"""


SAME_HEAD = """  'same' padding: total = max((ceil(X/S) - 1)*S + D*(K-1) + 1 - X, 0),
                  before = floor(total/2), after = total - before
"""


@pytest.mark.parametrize("stride,total,before,after,out", [(1, 2, 1, 1, 5), (2, 2, 1, 1, 3)])
def test_same_padding_splits_its_total(stride, total, before, after, out):
    text = Sequential(Conv2D(1, 1, 3, stride=stride, padding="same")).explain((1, 5, 5))
    block = SAME_HEAD + f"""\
    H, W: total = max((ceil(5/{stride}) - 1)*{stride} + 1*(3-1) + 1 - 5, 0) = {total},
          before = floor({total}/2) = {before}, after = {total} - {before} = {after}
  output size = floor((X + P_before + P_after - D*(K-1) - 1) / S) + 1
    H, W: floor((5 + {before} + {after} - 1*(3-1) - 1) / {stride}) + 1 = {out}
"""
    assert block in text


def test_an_odd_same_total_puts_the_extra_row_at_the_bottom():
    text = Sequential(Conv2D(1, 1, (2, 3), padding="same")).explain((1, 6, 6))
    assert SAME_HEAD + """\
    H: total = max((ceil(6/1) - 1)*1 + 1*(2-1) + 1 - 6, 0) = 1,
       before = floor(1/2) = 0, after = 1 - 0 = 1 (odd: the extra one goes to the bottom)
    W: total = max((ceil(6/1) - 1)*1 + 1*(3-1) + 1 - 6, 0) = 2,
       before = floor(2/2) = 1, after = 2 - 1 = 1
""" in text
    even = Sequential(Conv2D(1, 1, 2, padding="same")).explain((1, 6, 6))
    assert "after = 1 - 0 = 1 (odd: the extra one goes to the bottom/right)\n" in even


def test_lenet5_chains_to_a_receptive_field_of_16():
    text = lenet5().explain((1, 28, 28))
    assert """
layer 0: Conv2D(1->6, kernel_size=5, padding='same', activation='relu')
  input (1, 28, 28) -> output (6, 28, 28)
""" + SAME_HEAD + """\
    H, W: total = max((ceil(28/1) - 1)*1 + 1*(5-1) + 1 - 28, 0) = 4,
          before = floor(4/2) = 2, after = 4 - 2 = 2
  output size = floor((X + P_before + P_after - D*(K-1) - 1) / S) + 1
    H, W: floor((28 + 2 + 2 - 1*(5-1) - 1) / 1) + 1 = 28
  parameters = Cout*(Cin/groups)*K^2 + Cout = 6*(1/1)*5^2 + 6 = 156
  MACs = OH*OW*K^2*Cin*Cout/groups = 28*28*5^2*1*6/1 = 117,600
""" in text
    steps = [line.strip() for line in text.splitlines() if line.strip().startswith("H, W: r =")]
    assert steps == ["H, W: r = 1 + (5-1)*1*1 = 5, j = 1*1 = 1",
                     "H, W: r = 5 + (2-1)*1*1 = 6, j = 1*2 = 2",
                     "H, W: r = 6 + (5-1)*1*2 = 14, j = 2*1 = 2",
                     "H, W: r = 14 + (2-1)*1*2 = 16, j = 2*2 = 4"]
    assert """
layer 4: Flatten()
  input (16, 5, 5) -> output (400,)
  output size = C*H*W = 16*5*5 = 400

layer 5: Dense(400, 120)
  input (400,) -> output (120,)
  parameters = in*out + out = 400*120 + 120 = 48,120
  MACs = in*out = 400*120 = 48,000

layer 6: ReLU()
  input (120,) -> output (120,)
""" in text
    assert text.endswith("\n\ntotal: 61,706 parameters, 416,520 MACs per image, receptive field "
                         "16 x 16 input pixels (jump 4)")


def test_ceil_mode_pooling_and_the_dropped_last_window():
    text = Sequential(MaxPool2D(2, stride=3, padding=1, ceil_mode=True)).explain((1, 5, 6))
    assert """
  output size = ceil((X + P_before + P_after - D*(K-1) - 1) / S) + 1, D = 1 (ceil_mode)
    H: ceil((5 + 1 + 1 - 1*(2-1) - 1) / 3) + 1 = 3, but the last window would start at (3-1)*3 = 6
       >= X + P_before = 6, in the padding after the input, so it is dropped: 2
    W: ceil((6 + 1 + 1 - 1*(2-1) - 1) / 3) + 1 = 3
""" in text


def test_pad_and_global_pool():
    text = Sequential(Pad(((0, 1), (2, 0))), GlobalAvgPool2D()).explain((1, 4, 3))
    assert """
  output size = X + P_before + P_after
    H: 4 + 0 + 1 = 5
    W: 3 + 2 + 0 = 5
""" in text
    assert """
  one window over the whole input: K = X, S = 1, so H, W = 1
  receptive field r = r_in + (K-1)*D*j_in, jump j = j_in*S
    H, W: r = 1 + (5-1)*1*1 = 5, j = 1*1 = 1
""" in text


def test_the_explanation_is_a_str_that_shows_as_its_lines():
    text = Sequential(Conv2D(1, 1, 3), input_shape=(1, 5, 5)).explain()
    assert isinstance(text, Explanation) and isinstance(text, str)
    assert repr(text) == str(text) and "\n" in repr(text)


def test_explain_without_a_shape_says_what_to_pass():
    with pytest.raises(ValueError, match=r"Sequential.explain: no input shape .*model.explain\(\(1, 28, 28\)\)"):
        Sequential(Conv2D(1, 1, 3)).explain()
    with pytest.raises(ValueError, match=r"layer 1 Dense\(10, 2\) cannot take the output of layer 0"):
        Sequential(Flatten(), Dense(10, 2)).explain((1, 5, 5))


def _evaluate(expression):
    """A formula with its numbers, in Python: floor, ceil, max, ^ for powers, no commas."""
    return eval(expression.replace("^", "**"), {"floor": math.floor, "ceil": math.ceil, "max": max})


def _random_model(rng):
    """A stack of convolutions and pools with drawn sizes, strides, dilations and paddings."""
    layers, c = [], 1
    for _ in range(rng.integers(1, 4)):
        k, s = (int(v) for v in rng.integers(1, 4, 2))
        if rng.random() < 0.6:
            padding = ["same", int(rng.integers(0, 2)), ((0, 1), (2, 0))][rng.integers(0, 3)]
            out = int(rng.integers(1, 4))
            layers.append(Conv2D(c, out, (k, int(rng.integers(1, 4))), stride=s, padding=padding,
                                 dilation=int(rng.integers(1, 3))))
            c = out
        else:
            pool = MaxPool2D if rng.random() < 0.5 else AvgPool2D
            layers.append(pool(k + 1, stride=s, padding=int(rng.integers(0, (k + 1) // 2 + 1)),
                               ceil_mode=bool(rng.random() < 0.5)))
    return Sequential(*layers, ReLU(), Flatten())


@pytest.mark.parametrize("seed", range(40))
def test_every_formula_shows_what_the_layers_compute(seed):
    rng = np.random.default_rng(seed)
    while True:                                     # until the drawn layers fit the drawn input
        model = _random_model(rng)
        h, w = (int(v) for v in rng.integers(9, 20, 2))
        try:
            text = model.explain((1, h, w))
            break
        except ValueError as e:
            assert "does not fit" in str(e), e
    x = np.zeros((1, 1, h, w), np.float32)
    checked = 0
    for i, layer in enumerate(model.layers[:-2]):
        x = layer.forward(x, training=False)
        block = text.split(f"\nlayer {i}: ")[1].split("\n\n")[0]
        sizes = re.findall(r"^    (H, W|H|W): ((?:floor|ceil)\(.*\) \+ 1) = (\d+)"
                           r"(?:, but .*\n.*dropped: (\d+))?", block, re.M)
        got = {}
        for axes, formula, value, dropped in sizes:
            assert _evaluate(formula) == int(value)
            for axis in axes.split(", "):
                got[axis] = int(dropped or value)
        assert (got["H"], got["W"]) == x.shape[2:], block
        for line in block.splitlines():
            parts = line.split(": ", 1)[-1].split(" = ")
            for formula, result in zip(parts, parts[1:]):
                formula = formula.split(", ")[-1].strip()
                if re.fullmatch(r"[\d+\-*/^() ]*[+\-*/^][\d+\-*/^() ]*",
                                re.sub(r"floor|ceil|max|, ", "", formula)):
                    value = re.match(r"[\d,]+", result).group().rstrip(",")
                    assert _evaluate(formula) == int(value.replace(",", "")), line
                    checked += 1
    assert checked >= 3 * len(model.layers[:-2])   # output size, receptive field, jump


def test_summary_explain_on_the_command_line(capsys):
    assert cli.main(["summary", "--arch", "lenet5", "--explain"]) == 0
    out = capsys.readouterr().out
    assert out.count("receptive field: 16") == 1          # the table's footer
    assert "H, W: floor((28 + 2 + 2 - 1*(5-1) - 1) / 1) + 1 = 28" in out
    assert out.rstrip().endswith("receptive field 16 x 16 input pixels (jump 4)")
    assert cli.main(["summary", "--arch", "lenet5"]) == 0
    assert "floor(" not in capsys.readouterr().out


def test_the_readme_shows_what_explain_prints():
    import os

    with open(os.path.join(os.path.dirname(__file__), os.pardir, "README.md")) as f:
        readme = f.read()
    block = readme.split("### Explain mode", 1)[1].split("```\n", 2)[1]
    assert block.startswith("layer 0: Conv2D(1->6") and block in lenet5().explain((1, 28, 28))
