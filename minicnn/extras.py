"""Optional packages: import one, or say in one line which extra of minicnn brings it."""
import importlib

__all__ = ["EXTRAS", "MissingExtraError", "require"]

#: module -> (the package pip installs, the extra of minicnn that lists it)
EXTRAS = {"matplotlib": ("matplotlib", "plot"), "PIL": ("Pillow", "images"),
          "onnx": ("onnx", "onnx")}


class MissingExtraError(ImportError):
    """An optional package a function needs is not installed; the message names the extra."""


def require(module, who):
    """Import ``module`` (a key of EXTRAS, or a submodule of one) for ``who``, a function's
    name, or raise MissingExtraError: ``who needs matplotlib: pip install 'minicnn[plot]'``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package, extra = EXTRAS[module.split(".")[0]]
        raise MissingExtraError(f"{who} needs {package}, which is not installed: "
                                f"pip install 'minicnn[{extra}]'") from None
