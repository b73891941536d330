"""Standing in for the Lambda runtime: a Python 3.13 interpreter and the SDK it ships."""

import os
import shutil
import subprocess
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


def runtime_sdk_decoy(target: Path) -> Path:
    """A stand-in for the runtime's own SDK that fails when imported; return ``target``.

    Put it on ``sys.path`` after the bundle, where Lambda puts its runtime's boto3: the bundle
    must never reach it.
    """
    for package in ("boto3", "botocore"):
        (target / package).mkdir(parents=True)
        message = f"the Lambda runtime's {package} was imported, not the bundle's"
        (target / package / "__init__.py").write_text(f"raise ImportError({message!r})\n")
    return target
