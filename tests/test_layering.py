"""ARCHITECTURE.md's layer contract, the start-up cost of `slayer`, and schema/migration agreement."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "transformers", "peft", "trl", "datasets", "llama_cpp", "accelerate", "bitsandbytes"}
FORBIDDEN = {
    "engine": {"store", "remotes", "slayer_console", "textual", "asyncssh"},
    "store": {"slayer_console", "textual", "remotes"},
    "remotes": {"slayer_console", "textual"},
}


def _imports(path: Path):
    """(top-level module name, at module level?) for every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = set(map(id, tree.body))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            yield name.split(".")[0], id(node) in top_level, node.lineno


def test_layers_import_only_downwards_and_heavy_libraries_lazily():
    problems = []
    for layer in ("engine", "store", "remotes", "slayer_console"):
        for path in (ROOT / layer).rglob("*.py"):
            for name, module_level, line in _imports(path):
                where = f"{path.relative_to(ROOT)}:{line}"
                if name in FORBIDDEN.get(layer, ()):
                    problems.append(f"{where} imports {name} (layer {layer} must not)")
                if name in HEAVY and module_level:
                    problems.append(f"{where} imports {name} at module level (import it inside the function)")
    assert problems == []


def test_help_and_version_do_not_load_torch():
    code = ("import sys; sys.argv=['slayer', '{arg}']\n"
            "from slayer_console.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in {heavy!r} if m in sys.modules)\n"
            "print('HEAVY', heavy)")
    for arg in ("--help", "--version"):
        out = subprocess.run([sys.executable, "-c", code.format(arg=arg, heavy=HEAVY)], cwd=ROOT,
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
