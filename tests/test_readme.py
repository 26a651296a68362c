"""The README's code runs as written (one epoch instead of ten) and its set-up commands parse."""
import os
import re

import pytest

from conftest import long_training, mnist_root

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def readme():
    with open(README) as f:
        return f.read()


def test_setup_commands_are_marked():
    text = readme()
    for marker in ("<!-- setup:train -->", "<!-- setup:test -->"):
        block = text.split(marker, 1)[1]
        command = re.search(r"```sh\n(.+?)\n```", block, re.S).group(1)
        assert command.count("\n") == 0 and "pip install" in command
    assert "minicnn train" in text.split("<!-- setup:train -->", 1)[1].split("```")[1]


@long_training
@pytest.mark.skipif(mnist_root() is None, reason="real MNIST not found: set MINICNN_DATA")
def test_api_example_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.+?)\n```", readme(), re.S).group(1)
    assert "epochs=10" in code
    code = code.replace("epochs=10", "epochs=1").replace("T_max=10", "T_max=1")
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["accuracy"] > 0.97
    assert (tmp_path / "lenet5.npz").exists()
