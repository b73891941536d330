"""Bundle the handler and its dependencies for Lambda without Docker.

``cryptography`` has native code and is not in the Lambda runtime, so its wheels must match
the function's architecture and Python version, not the machine running ``cdk synth``. pip can
fetch exactly those wheels with ``--platform``/``--python-version``/``--only-binary``. The
installed dependencies are cached per (requirements, Python, architecture), so a second synth
on the same machine never runs pip again.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aws_cdk as cdk
import jsii

HANDLER_PACKAGE = "imported_key_handler"
REQUIREMENTS_FILE = "requirements.txt"
# Files that must not reach the asset: they depend on the Python that ran the synth.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".complete")
ASSET_EXCLUDES = ["__pycache__", "*.pyc", "*.pyo"]
CACHE_ENV = "IMPORTED_KEY_CDK_CACHE"
PIP_TIMEOUT_S = 600


def lambda_platforms(architecture: str) -> list[str]:
    """pip platform tags the Lambda Python 3.12+ runtimes (Amazon Linux 2023, glibc 2.34) run."""
    machine = {"arm64": "aarch64", "x86_64": "x86_64"}[architecture]
    return [f"manylinux2014_{machine}", f"manylinux_2_28_{machine}", f"manylinux_2_34_{machine}"]


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imported-key-cdk"


def pip_command(
    requirements: Path, target: Path, python_version: str, architecture: str
) -> list[str]:
    command = [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-compile", "--no-input",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
        "--target", str(target), "--requirement", str(requirements),
    ]  # fmt: skip
    for platform in lambda_platforms(architecture):
        command += ["--platform", platform]
    return command


def cached_dependencies(requirements: Path, python_version: str, architecture: str) -> Path:
    """Directory with the handler's dependencies installed for the Lambda platform."""
    digest = hashlib.sha256(
        b"\0".join(
            [requirements.read_bytes(), python_version.encode(), architecture.encode()]
            + [p.encode() for p in lambda_platforms(architecture)]
        )
    ).hexdigest()[:32]
    final = cache_root() / "dependencies" / f"py{python_version}-{architecture}-{digest}"
    if (final / ".complete").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=final.parent))
    try:
        result = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            pip_command(requirements, staging, python_version, architecture),
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                "Bundling the ImportedKey handler failed: pip could not install "
                f"{requirements} for Python {python_version} on {architecture}. pip said:\n"
                f"{result.stderr.strip()[-2000:]}"
            )
        (staging / ".complete").write_text("ok\n")
        try:
            staging.rename(final)
        except OSError:
            # Another synth finished the same bundle first; theirs is as good as ours.
            if not (final / ".complete").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


@jsii.implements(cdk.ILocalBundling)
class LocalPipBundling:
    """Copies the handler package and adds its dependencies built for the Lambda platform."""

    def __init__(self, source_dir: Path, python_version: str, architecture: str) -> None:
        self._source_dir = source_dir
        self._python_version = python_version
        self._architecture = architecture

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        # jsii passes both arguments positionally; ``options`` is the Docker fallback's.
        output = Path(output_dir)
        dependencies = cached_dependencies(
            self._source_dir / REQUIREMENTS_FILE, self._python_version, self._architecture
        )
        shutil.copytree(dependencies, output, dirs_exist_ok=True, ignore=IGNORED)
        shutil.copytree(
            self._source_dir, output / HANDLER_PACKAGE, dirs_exist_ok=True, ignore=IGNORED
        )
        return True
