"""Jupyter's view: HTML tables for models and summaries, and model.summary() shown exactly once
in a script (printed) and at a prompt or in a notebook (returned, shown by the session)."""
import sys
import types

import numpy as np
import pytest

from minicnn import Conv2D, Dense, Flatten, Sequential
from minicnn.architectures import lenet5
from minicnn.notebook import session_shows_values


@pytest.fixture
def script(monkeypatch):
    monkeypatch.delattr(sys, "ps1", raising=False)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)


def test_in_a_script_summary_prints_the_table_once(script, capsys):
    table = lenet5().summary((1, 28, 28))
    out = capsys.readouterr().out
    assert out == str(table) + "\n" and out.count("61,706") == 1


@pytest.mark.parametrize("session", ["prompt", "ipython"])
def test_at_a_prompt_or_in_a_notebook_summary_returns_without_printing(session, script, monkeypatch,
                                                                       capsys):
    if session == "prompt":
        monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    else:  # IPython and Jupyter's kernel: get_ipython() returns the running shell
        monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: object()))
    assert session_shows_values()
    table = lenet5().summary((1, 28, 28))
    assert capsys.readouterr().out == ""
    assert repr(table) == str(table) and "61,706" in repr(table)   # what the session shows
    assert "61,706" in table._repr_html_()
    lenet5().summary((1, 28, 28), print_fn=print)                  # asked for: printed anyway
    assert capsys.readouterr().out.count("61,706") == 1


def test_an_imported_ipython_without_a_shell_is_a_script(script, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not session_shows_values()
    lenet5().summary((1, 28, 28))
    assert capsys.readouterr().out.count("61,706") == 1


def test_summary_html_is_a_table_with_a_row_per_layer():
    table = lenet5().summary((1, 28, 28), print_fn=None)
    page = table._repr_html_()
    assert page.startswith("<table>") and page.endswith("</table>")
    assert page.count("<tr>") == 1 + 1 + len(table.rows) + 1    # head, input, layers, footer
    assert "Conv2D(1-&gt;6, kernel_size=5, padding=&#x27;same&#x27;, activation=&#x27;relu&#x27;)" in page
    assert "<td style=\"text-align:right\">117,600</td>" in page and "(16, 5, 5)" in page
    assert "parameters: 61,706" in page and "receptive field: 16" in page


def test_a_model_shows_its_summary_when_it_knows_a_shape():
    model = Sequential(Conv2D(1, 2, 3), Flatten(), Dense(2 * 26 * 26, 3), input_shape=(1, 28, 28))
    page = model._repr_html_()
    assert "(2, 26, 26)" in page and "MACs" in page
    model.forward(np.zeros((1, 1, 28, 28), np.float32), training=False)
    assert model._repr_html_() == page


def test_a_model_without_a_shape_lists_its_layers():
    model = Sequential(Conv2D(1, 2, 3), Flatten(), Dense(4, 3))
    page = model._repr_html_()
    assert "<th>layer</th>" in page and "Dense(4, 3)" in page and "MACs" not in page
    assert "parameters: 35 (output shapes: call model.summary(input_shape))" in page
    broken = Sequential(Conv2D(1, 2, 3), Flatten(), Dense(4, 3), input_shape=(1, 28, 28))
    assert "Dense(4, 3)" in broken._repr_html_()                   # cannot take it: layers only
