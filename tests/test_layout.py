"""The layout a reader relies on (issue 17): no two modules of minicnn import each other,
directly or round a loop; every module says what it exports (``__all__``); no module outside
the kernels grows past what fits in a reader's head."""
import ast
import pathlib

import pytest

import minicnn

PACKAGE = pathlib.Path(minicnn.__file__).parent
#: "about 400 lines": a module past this is split by what its parts are
MAX_LINES = 420


def modules():
    """{dotted name: path} of every Python module of the package (not the kernels)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if "_kernels" in rel.parts:
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        found[".".join(parts)] = path
    return found


def imports_of(name, path, known):
    """The minicnn modules ``name`` imports, anywhere in it (a function's import counts: it
    runs too). ``from . import x`` names module x when there is one, else the package."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "minicnn")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "minicnn":
                target = node.module
            else:
                continue
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names
                         if f"{target}.{a.name}" in known)
    found.discard(name)
    return {m for m in found if m in known}


def import_graph():
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    # importing minicnn.a.b runs minicnn.a's __init__ first: not an edge a reader follows
    return graph


def find_cycle(graph):
    """One import loop as a list of modules, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                loop = visit(nxt)
                if loop:
                    return loop
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            loop = visit(node)
            if loop:
                return loop
    return None


def test_no_module_imports_one_that_imports_it():
    graph = import_graph()
    # a package's __init__ that re-exports its modules is imported by them only through
    # their parent name, which Python has already set up: leave those edges out
    graph = {name: {m for m in deps if not name.startswith(m + ".")}
             for name, deps in graph.items()}
    loop = find_cycle(graph)
    assert loop is None, "import loop: " + " -> ".join(loop)


def test_the_cycle_finder_finds_a_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_module_declares_all(name):
    path = modules()[name]
    if path.name == "__main__.py":
        pytest.skip("a script entry point exports nothing")
    tree = ast.parse(path.read_text())
    declared = [n for n in tree.body if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)]
    assert declared, f"{path} has no __all__"
    module = __import__(name, fromlist=["__all__"])
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it lacks: {missing}"


def test_no_module_outside_the_kernels_is_too_long():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_no_module_shadows_the_standard_library():
    import sys
    shadows = [name for name in modules() if name.rpartition(".")[2] in sys.stdlib_module_names]
    assert not shadows, shadows
