"""The sans-I/O layers import neither asyncio nor websockets (statically and at run time)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aioserversync"
SANS_IO = ("protocol", "query", "replication", "policies")
FORBIDDEN = ("asyncio", "websockets")


def _sans_io_modules() -> list[Path]:
    return sorted(p for layer in SANS_IO for p in (PACKAGE / layer).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(path: Path, module: str | None = None) -> set[str]:
    """Every module a file imports, anywhere in it (also inside functions), made absolute."""
    module = module or _module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, path.name == "__init__.py")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return found


def _forbidden(name: str) -> bool:
    top = name.split(".")[0]
    return top in FORBIDDEN or name.startswith("aioserversync.asyncio")


def test_there_are_sans_io_modules() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in _sans_io_modules()}
    assert "protocol/client.py" in names and "protocol/connection.py" in names


@pytest.mark.parametrize(
    "path", _sans_io_modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix()
)
def test_static_imports(path: Path) -> None:
    bad = sorted(name for name in imported_modules(path) if _forbidden(name))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_static_check_catches_relative_and_nested_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ..asyncio import client\n    import asyncio.tasks\n")
    found = imported_modules(probe, "aioserversync.protocol.probe")
    assert "aioserversync.asyncio" in found and "asyncio.tasks" in found
    assert any(_forbidden(name) for name in found)


def test_runtime_imports_in_a_fresh_interpreter() -> None:
    names = [f"aioserversync.{layer}" for layer in SANS_IO] + [
        _module_name(p) for p in _sans_io_modules()
    ]
    code = (
        "import importlib, sys\n"
        f"forbidden = {FORBIDDEN!r}\n"
        "def bad():\n"
        "    return sorted(m for m in sys.modules if m.split('.')[0] in forbidden\n"
        "                  or m.startswith('aioserversync.asyncio'))\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "    if bad():\n"
        "        print(name, 'loads', [m for m in bad() if m.count('.') == 0 or\n"
        "              m.startswith('aioserversync')])\n"
        "        break\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "", f"a sans-I/O import pulls in I/O modules: {out.stdout.strip()}"
