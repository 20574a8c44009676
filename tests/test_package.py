"""The package surface: a small curated API, cheap to import, installable with its data."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import fmicl_registry as fm


def test_import_is_light() -> None:
    code = "import sys, fmicl_registry; print('torch' in sys.modules, 'sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_public_names_resolve_to_the_documented_objects() -> None:
    from fmicl_registry import components

    assert fm.registry is components.registry and callable(fm.registry)
    assert fm.get_divergence is components.get_divergence
    assert set(fm.__all__) <= set(dir(fm))
    assert issubclass(fm.DivergenceSpecError, ValueError)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        _ = fm.no_such_thing  # type: ignore[attr-defined]
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:
        raise AssertionError("expected AttributeError")


def test_lazy_names_load_once_and_list_the_public_api() -> None:
    # in a fresh interpreter: the names load their module on first use, then live on the package
    code = """
import sys, fmicl_registry.mi as mi
assert "rho_for_mi" not in vars(mi) and "fmicl_registry.mi.gaussians" not in sys.modules
f = mi.rho_for_mi
assert vars(mi)["rho_for_mi"] is f and "fmicl_registry.mi.gaussians" in sys.modules
assert dir(mi) == sorted(mi.__all__)
try:
    mi.nothing_here
except AttributeError as err:
    assert "'fmicl_registry.mi' has no attribute 'nothing_here'" in str(err), err
else:
    raise AssertionError("no AttributeError")
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_public_name_has_a_docstring_example() -> None:
    """Each name of the curated API documents itself with a ``>>>`` example, which
    test_docstring_examples runs (so the example is tested, not just shown)."""
    import inspect

    missing = [
        name
        for name in fm.__all__
        if name not in {"__version__", "hookimpl"}
        and ">>>" not in (inspect.getdoc(getattr(fm, name)) or "")
    ]
    assert missing == []


def test_the_library_works_without_its_optional_extras() -> None:
    """Without scikit-learn and hypothesis (the ``digits`` and ``testing`` extras) the library
    imports, and what needs them says which extra to install."""
    code = """
import sys
sys.modules["sklearn"] = None      # as if not installed
sys.modules["hypothesis"] = None
import fmicl_registry as fm
assert len(fm.get_divergence("kl").f(__import__("torch").ones(2))) == 2
for use in (lambda: fm.check_divergence, lambda: fm.build("datasets", "digits")[0]):
    try:
        use()
    except fm.FmiclError as err:
        print(err)
    else:
        raise AssertionError("no error")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "pip install 'fmicl-registry[testing]'" in lines[0]
    assert "pip install 'fmicl-registry[digits]'" in lines[1]


def _module_imports() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports, at import time or
    inside a function (all but those under ``if TYPE_CHECKING``, which never run)."""
    import ast
    import pkgutil
    from pathlib import Path

    root = Path(fm.__file__).parent
    names = {m.name for m in pkgutil.walk_packages([str(root)], "fmicl_registry.")}
    names.add("fmicl_registry")
    graph: dict[str, set[str]] = {}
    for name in names:
        parts = name.split(".")[1:]
        path = root.joinpath(*parts)
        is_package = path.is_dir()
        file = path / "__init__.py" if is_package else path.with_suffix(".py")
        if not file.is_file():
            continue
        package = name if is_package else name.rsplit(".", 1)[0]
        found: set[str] = set()
        tree = ast.parse(file.read_text())
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(max(node.level - 1, 0)):
                    base = base.rsplit(".", 1)[0]
                target = (
                    f"{base}.{node.module}" if node.level and node.module else node.module or base
                )
                candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            found |= {c for c in candidates if c in names and c != name}
        graph[name] = found
    return graph


def test_no_import_cycle_inside_the_package() -> None:
    """A reader can read the modules bottom-up: no module imports (at import time or inside a
    function) one that imports it back, however long the way round."""
    graph = _module_imports()
    assert graph["fmicl_registry.components"] >= {"fmicl_registry.plugins"}
    cycles = []
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph.get(module, ())):
            # a package's own __init__ importing its submodules is the one allowed way round
            if module.startswith(other + "."):
                continue
            if state.get(other) == 1:
                cycles.append([*path[path.index(other) :], other])
            elif other not in state:
                visit(other, [*path, other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def _imports(path: Path, package: str) -> set[str]:
    """The absolute names of the modules a file imports (relative imports resolved), and every
    string constant that names a ``fmicl_registry`` module (``importlib.import_module``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and str(node.value).startswith("fmicl_registry."):
            names.add(str(node.value))
    return names


def _imports_mi(names: set[str]) -> bool:
    return any(
        name == "fmicl_registry.mi" or name.startswith("fmicl_registry.mi.") for name in names
    )


def test_the_core_never_imports_the_mi_benchmark() -> None:
    # fmicl_registry.mi is an application of the library: its command is the built-in plugin
    # bench_mi, and nothing else in the package (command line, registry, training) imports it.
    root = Path(fm.__file__).parent
    importers = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[0] != "mi" and _imports_mi(
            _imports(path, ".".join(["fmicl_registry", *parts[:-1]]))
        ):
            importers.append("/".join(parts))
    assert importers == []
    plugin = Path(__file__).resolve().parents[1] / "plugins" / "bench_mi.py"
    assert _imports_mi(_imports(plugin, "fmicl_registry.builtin_plugins"))
