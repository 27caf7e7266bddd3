"""The code's shape, read from its source with ``ast``: no import runs up the layers, there are no
import cycles (imports inside functions count), and no module imports another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["clip_search", "tagging", "engines", "comparisons", "framesearch", "ui", "dashboard"]  # lowest first
ENTRY_POINTS = {"cli", "__main__"}  # a command line is an edge: it may call any layer


def _modules() -> dict[str, Path]:
    out = {}
    for top in LAYERS:
        paths = [ROOT / f"{top}.py"] if (ROOT / f"{top}.py").exists() else sorted((ROOT / top).rglob("*.py"))
        for p in paths:
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = p
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import of ``path``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                module = ".".join(pkg + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
    return found


def _ours(target: str) -> str | None:
    """The module of ours ``target`` names (a name inside a module counts as the module)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        out = set()
        for module, names, _ in _imports(name, path):
            for t in [module, *(f"{module}.{n}" for n in names)]:
                m = _ours(t)
                if m and m != name:
                    out.add(m)
        edges[name] = out
    return edges


def _rank(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_no_import_runs_up_the_layers():
    up = [
        f"{m} -> {o}"
        for m, outs in _edges().items()
        if m.split(".")[-1] not in ENTRY_POINTS
        for o in outs
        if _rank(o) > _rank(m)
    ]
    assert not up, "imports that run up the layers:\n" + "\n".join(sorted(up))


def test_there_are_no_import_cycles():
    edges = _edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    loops: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                loops.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not loops, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in loops)


def test_no_module_imports_another_modules_private_names():
    private = [
        f"{name}:{line} takes {n} from {module}"
        for name, path in MODULES.items()
        for module, names, line in _imports(name, path)
        if _ours(module) and _ours(module) != name
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not private, "private names imported:\n" + "\n".join(private)


def test_the_checks_see_the_code():
    """The walk finds every layer and real imports (a check that finds nothing could not fail)."""
    assert {m.split(".")[0] for m in MODULES} == set(LAYERS)
    assert "clip_search.store.library" in _edges()["engines.base"]


def test_imports_inside_functions_keep_a_heavy_import_off_a_light_path_and_say_so():
    """An import inside a function is there only to keep something heavy (torch, Ray, an SDK) from
    loading on a light path; each says which, on its line or the line above."""
    silent = []
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node.col_offset > 0:
                here, above = lines[node.lineno - 1], lines[node.lineno - 2].strip()
                if "#" not in here and not above.startswith("#") and not _type_checking(lines, node.lineno):
                    silent.append(f"{name}:{node.lineno}: {here.strip()}")
    assert not silent, "imports inside functions without a reason:\n" + "\n".join(silent)


def _type_checking(lines: list[str], lineno: int) -> bool:
    """Whether the import sits in an ``if TYPE_CHECKING:`` block (annotations only, never run)."""
    for line in reversed(lines[: lineno - 1]):
        if line and not line.startswith((" ", "\t")):
            return line.startswith("if TYPE_CHECKING")
    return False
