"""The layers of utils/: every import runs down, and no module imports itself back (a circle).

Read from the source (every ``import`` statement, those inside functions included), so a lazy
import that runs up the layers fails here as surely as one at the top of a module. A module may
import within its own package and from any layer below its own; ``visualization`` sits on top.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# top to bottom; one line is one layer, whose packages do not import each other
LAYERS = [
    ("visualization",),
    ("utils.api",),
    ("utils.pipeline",),
    ("utils.analysis",),
    ("utils.sections",),
    ("utils.engine",),
    ("utils.io", "utils.storage"),
    ("utils.models", "utils.problems", "utils.optim"),
    ("utils.numerics",),
    ("utils.families", "utils.device"),
    ("utils.config", "utils.signals"),
]
ALLOWED_SIBLINGS = {("utils.io", "utils.storage")}  # the storage contract and the layouts it reads


def modules():
    """{module name: path} of every module of the project's packages."""
    out = {}
    for package in ("utils", "visualization"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(path: Path, name: str, known=None) -> set:
    """The project modules ``path`` imports (absolute names), wherever the statement stands.

    ``from a.b import c`` imports the module a.b.c where there is one, else the module a.b.
    """
    known = modules() if known is None else known
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {m for m in found if m.split(".")[0] in ("utils", "visualization")}


def unit(module: str):
    """(layer index, the package of the layer table it belongs to); None for utils/__init__."""
    for i, layer in enumerate(LAYERS):
        for package in layer:
            if module == package or module.startswith(package + "."):
                return i, package
    return None


KNOWN = modules()
GRAPH = {name: {m for m in imports(path, name, KNOWN) if m in KNOWN} for name, path in KNOWN.items()}


def test_every_module_has_a_layer():
    assert [m for m in GRAPH if m not in ("utils", "visualization") and unit(m) is None] == []


def test_imports_run_down_the_layers():
    upward = []
    for module, targets in GRAPH.items():
        here = unit(module)
        for target in targets:
            there = unit(target)
            if here is None or there is None or here[1] == there[1]:
                continue  # the package's own modules; utils/__init__ (lazy re-exports of utils.io)
            if there[0] < here[0] or (there[0] == here[0] and (here[1], there[1]) not in ALLOWED_SIBLINGS):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_circle():
    """Tarjan's strongly connected components of the module graph: all of size one."""
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_checker_sees_lazy_and_upward_imports(tmp_path):
    """The contract would catch what it is for: an import inside a function, running up."""
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from utils.pipeline import cli\n")
    assert "utils.pipeline.cli" in imports(path, "utils.numerics.m", KNOWN)
    assert unit("utils.pipeline.cli")[0] < unit("utils.numerics.m")[0]
