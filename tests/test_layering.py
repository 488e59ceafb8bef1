"""docs/ARCHITECTURE.md's layer contract, the start-up cost of `slayer`, and schema/migration agreement."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("engine", "store", "remotes", "slayer_console")
HEAVY = {"torch", "transformers", "peft", "trl", "datasets", "llama_cpp", "accelerate", "bitsandbytes"}
NUMERIC = {"numpy", "scipy", "pandas", "sklearn", "pyarrow"}
FORBIDDEN = {
    "engine": {"store", "remotes", "slayer_console", "textual", "asyncssh"},
    "store": {"slayer_console", "textual", "remotes"},
    "remotes": {"slayer_console", "textual"},
}


def _imports(path: Path):
    """(top-level module name, required on import?, line) for every absolute import in a file. An import is
    required on import unless it sits in a function body, under `if TYPE_CHECKING:`, or in a `try` whose
    `except ImportError` falls back."""
    tree = ast.parse(path.read_text(), filename=str(path))

    def visit(node, on_import: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from visit(child, False)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from visit(ast.Module(body=child.orelse, type_ignores=[]), on_import)
            elif isinstance(child, ast.Try) and any("ImportError" in ast.unparse(h.type or ast.Pass())
                                                    or "ModuleNotFoundError" in ast.unparse(h.type or ast.Pass())
                                                    for h in child.handlers):
                yield from visit(ast.Module(body=child.body, type_ignores=[]), False)  # optional, with a fallback
                rest = [*child.handlers, *child.orelse, *child.finalbody]
                yield from visit(ast.Module(body=rest, type_ignores=[]), on_import)
            else:
                if isinstance(child, ast.Import):
                    for alias in child.names:
                        yield alias.name.split(".")[0], on_import, child.lineno
                elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                    yield child.module.split(".")[0], on_import, child.lineno
                yield from visit(child, on_import)

    yield from visit(tree, True)


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group()).lower()


def core_modules() -> set[str]:
    """Every top-level module the light core install (`pip install slayer-console`, no extras) provides:
    the standard library, our packages, and the distributions that pyproject's core dependencies bring."""
    todo = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    dists: set[str] = set()
    while todo:
        name = _name(todo.pop())
        if name in dists:
            continue
        dists.add(name)
        try:
            todo += [r for r in requires(name) or [] if "extra ==" not in r.replace("extra==", "extra ==")]
        except PackageNotFoundError:
            pass  # a dependency of a dependency for another platform or Python
    provided = {mod for mod, names in packages_distributions().items() if any(_name(n) in dists for n in names)}
    return provided | set(sys.stdlib_module_names) | set(LAYERS) | {"assets", "__future__"}


def test_layers_import_only_downwards_and_optional_libraries_lazily():
    """The core install must import every module that runs on import; the extras' (torch, llama_cpp, lm_eval,
    scipy …) are imported inside the function that needs them, where only their own commands reach them."""
    core = core_modules()
    problems = []
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            for name, on_import, line in _imports(path):
                where = f"{path.relative_to(ROOT)}:{line}"
                if name in FORBIDDEN.get(layer, ()):
                    problems.append(f"{where} imports {name} (layer {layer} must not)")
                if on_import and name not in core:
                    problems.append(f"{where} imports {name} on import, which the core install lacks "
                                    "(import it inside the function, or make it a core dependency)")
    assert problems == []


def test_the_core_closure_holds_the_console_and_none_of_the_ml_stack():
    core = core_modules()
    assert {"textual", "sqlmodel", "sqlalchemy", "asyncssh", "numpy", "yaml", "click"} <= core
    assert not core & (HEAVY | NUMERIC - {"numpy"} | {"lm_eval", "gguf", "tokenizers"})


def test_help_and_version_load_neither_the_ml_stack_nor_numpy():
    code = ("import sys; sys.argv=['slayer', '{arg}']\n"
            "from slayer_console.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in {heavy!r} if m in sys.modules)\n"
            "print('HEAVY', heavy)")
    for arg in ("--help", "--version"):
        out = subprocess.run([sys.executable, "-c", code.format(arg=arg, heavy=HEAVY | NUMERIC)], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        assert "HEAVY []" in out, out


def test_migrations_match_the_models(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from store import Store

    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_the_console_reads_the_store_through_its_query_api():
    """slayer_console builds no SQL: no sqlalchemy, sqlmodel or store.models, in any function either
    (store.queries, store.overview, store.deltas … are its API)."""
    problems = []
    for path in (ROOT / "slayer_console").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            problems += [f"{path.relative_to(ROOT)}:{node.lineno} imports {name}" for name in names
                         if name.split(".")[0] in ("sqlalchemy", "sqlmodel") or name.startswith("store.models")]
    assert problems == []
