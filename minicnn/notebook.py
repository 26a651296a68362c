"""How models and summaries show in Jupyter (HTML tables), and when a summary prints itself.

``model.summary()`` prints its table in a script; at a prompt (Python's or IPython's) or in
a notebook it returns the table without printing, because those show a returned value
themselves: the table appears exactly once either way.
"""
import html
import sys

__all__ = ["session_shows_values", "summary_html", "model_html"]


def session_shows_values():
    """True where the value of an expression statement is shown by the session itself: the
    Python prompt (``sys.ps1`` exists) and IPython, including Jupyter's kernel."""
    if hasattr(sys, "ps1"):
        return True
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    try:
        return get is not None and get() is not None
    except Exception:  # an IPython we do not know: printing is the safe side
        return False


def _table(head, rows, right=(), footer=None):
    """An HTML table; ``right`` names the columns aligned right (numbers)."""
    align = ' style="text-align:right"'

    def cells(tag, values):
        return "".join(f"<{tag}{align if i in right else ''}>{html.escape(str(v))}</{tag}>"
                       for i, v in enumerate(values))

    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
    foot = (f"<tfoot><tr><td colspan=\"{len(head)}\">{html.escape(footer)}</td></tr></tfoot>"
            if footer else "")
    return (f"<table><thead><tr>{cells('th', head)}</tr></thead><tbody>{body}</tbody>{foot}"
            "</table>")


def _axes(v):
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


def _shape(shape):
    return "(" + ", ".join(str(v) for v in shape) + ("," if len(shape) == 1 else "") + ")"


def _keep_indent(text):
    body = text.lstrip(" ")
    return "\u00a0" * (len(text) - len(body)) + body


def summary_html(table):
    """The summary (a minicnn.summary.Summary) as an HTML table: the columns of its text."""
    rows = [("", "input", _shape(table.input_shape), "", "", "1", "1")]
    # a nested row's indentation as no-break spaces: HTML collapses plain ones
    rows += [(r["index"], _keep_indent(r["layer"]), _shape(r["output_shape"]), f"{r['params']:,}",
              f"{r['macs']:,}", _axes(r["receptive_field"]), _axes(r["jump"])) for r in table.rows]
    footer = (f"parameters: {table.total_params:,} ({table.param_bytes / 1024:.1f} KiB)   "
              f"MACs per image: {table.total_macs:,}   "
              f"receptive field: {_axes(table.receptive_field)}")
    return _table(table.columns, rows, right={0, 3, 4, 5, 6}, footer=footer)


def model_html(model):
    """A Sequential as HTML: its summary table when it knows an input shape and can take
    it, else its layers with their parameter counts."""
    try:
        return summary_html(model.summary(print_fn=None))
    except ValueError:  # no shape known, or the layers cannot take it
        pass
    rows = [(i, repr(layer), f"{sum(p.value.size for p in layer.parameters()):,}")
            for i, layer in enumerate(model.layers)]
    total = sum(p.value.size for p in model.parameters())
    return _table(("#", "layer", "params"), rows, right={0, 2},
                  footer=f"parameters: {total:,} (output shapes: call model.summary(input_shape))")
