"""mypy --strict over the library, the handler, the example app, scripts and bench.

`make test` runs it here, as one test beside the others, instead of before them: on a fresh
clone mypy spends most of a core's time reading aws-cdk-lib's stubs, while the other tests
mostly wait on their emulators. `make lint` still runs it on its own.

aws-cdk-lib's root module imports all of its ~350 submodules for type checkers, so mypy would
analyse every AWS service's module although the code reaches a few dozen. pyproject.toml has
mypy follow only the submodules the code can reach (directly or through the types of those it
uses) and refuse the import of any other (``follow_imports = "error"``): the same findings on
this code, in about 40% of the time. The second test keeps that list exact.
"""

import ast
import importlib.util
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from support.synth import REPO

PYPROJECT = REPO / "pyproject.toml"
# Every cross-module import jsii generates reads `import aws_cdk.aws_iam as _aws_iam_940a1ce0`;
# the examples in docstrings never carry that alias, so they do not count.
JSII_IMPORT = re.compile(r"^\s*import (aws_cdk(?:\.\w+)*) as _\w+_[0-9a-f]{8}$", re.MULTILINE)
ALWAYS_FOLLOWED = "aws_cdk.interfaces"  # small (about 3 s for all of it): followed whole


def test_mypy_strict_finds_no_issue() -> None:
    # The files and the strictness come from pyproject.toml's [tool.mypy], as in `make lint`.
    result = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"mypy --strict failed:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout


def _mypy_config() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads(PYPROJECT.read_text())["tool"]["mypy"]
    return config


def _followed_aws_cdk_modules() -> set[str]:
    """The aws_cdk modules pyproject.toml has mypy follow, below its refusal of the rest."""
    overrides = _mypy_config()["overrides"]
    (refused,) = [o for o in overrides if o["module"] == ["aws_cdk.*"]]
    assert refused["follow_imports"] == "error"
    (followed,) = [o for o in overrides if "aws_cdk" in o["module"]]
    assert followed["follow_imports"] == "normal"
    assert f"{ALWAYS_FOLLOWED}.*" in followed["module"]
    return {name for name in followed["module"] if not name.startswith(ALWAYS_FOLLOWED)}


def _aws_cdk_root() -> Path:
    spec = importlib.util.find_spec("aws_cdk")
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent


def _module_file(root: Path, module: str) -> Path | None:
    path = root.joinpath(*module.split(".")[1:])
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _python_files() -> Iterator[Path]:
    for entry in _mypy_config()["files"]:
        path = REPO / entry
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _named_by(source: str) -> Iterator[str]:
    """The aws_cdk submodules a source imports, or reaches as an attribute of aws_cdk."""
    aliases = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "aws_cdk":
                    aliases.add(alias.asname or alias.name)
                elif alias.name.startswith("aws_cdk."):
                    yield alias.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aws_cdk"):
            for alias in node.names:
                yield f"{node.module}.{alias.name}"
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            yield f"aws_cdk.{node.attr}"


def _reachable(start: Iterable[str], root: Path) -> set[str]:
    """``start`` and every aws_cdk module their type-checking imports lead to."""
    reached: set[str] = set()
    pending = [name for name in start if _module_file(root, name) is not None]
    while pending:
        module = pending.pop()
        if module in reached:
            continue
        reached.add(module)
        parts = module.split(".")
        pending += [".".join(parts[:end]) for end in range(1, len(parts))]  # its packages
        file = _module_file(root, module)
        assert file is not None, module
        pending += JSII_IMPORT.findall(file.read_text(encoding="utf-8"))
    return {name for name in reached if not name.startswith(ALWAYS_FOLLOWED)}


def test_mypy_follows_exactly_the_aws_cdk_modules_the_code_reaches() -> None:
    root = _aws_cdk_root()
    # Were jsii to write its imports differently, nothing would be reached: fail, not pass.
    assert {"aws_cdk.aws_iam", "aws_cdk.aws_ec2"} <= _reachable(["aws_cdk.aws_lambda"], root)
    named = {name for path in _python_files() for name in _named_by(path.read_text())}
    needed = _reachable(named | {"aws_cdk"}, root)
    followed = _followed_aws_cdk_modules()
    assert sorted(needed - followed) == [], "add these to pyproject.toml's followed aws_cdk modules"
    assert sorted(followed - needed) == [], "no code reaches these any more: remove them"
