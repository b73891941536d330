"""mypy --strict over the library, the handler, the example app, scripts and bench.

`make test` runs it here, as one test beside the others, instead of before them: on a fresh
clone mypy spends about a minute of one core reading aws-cdk-lib's stubs, while the other tests
mostly wait on their emulators. `make lint` still runs it on its own.
"""

import subprocess
import sys

from support.synth import REPO


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
