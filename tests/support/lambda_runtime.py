"""Standing in for the Lambda runtime: a Python 3.13 interpreter and the boto3 it ships."""

import os
import shutil
import subprocess
import sys
from pathlib import Path


def find_python_313() -> str | None:
    """A working Python 3.13: $PYTHON313, pyenv's install, or python3.13 on PATH."""
    candidates = [os.environ.get("PYTHON313", "")]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.13*/bin/python3.13"))
    candidates.append(shutil.which("python3.13") or "")
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if probe.stdout.strip() == "True":
            return candidate
    return None


def install_runtime_boto3(target: Path, platform: str = "manylinux2014_x86_64") -> Path:
    """pip-install boto3 for CPython 3.13 on ``platform`` into ``target``; return ``target``.

    Put it on ``sys.path`` after the bundle, as the runtime's own copy would be.
    """
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
         "--only-binary=:all:", "--python-version", "3.13", "--implementation", "cp",
         "--platform", platform, "boto3"],
        check=True, timeout=600,
    )  # fmt: skip
    return target
