"""Bundle the handler and its dependencies for Lambda without Docker.

``cryptography`` has native code, so its wheels must match the function's architecture and
Python version, not the machine running ``cdk synth``. pip fetches exactly those wheels with
``--platform``/``--python-version``/``--only-binary``, and ``--require-hashes`` makes it refuse
any wheel whose sha256 is not pinned in the handler's requirements.txt. boto3 and botocore are
bundled too: the handler relies on KMS fields from 2025 that the runtime's SDK may lack.

The installed dependencies are cached per recipe (requirements, Python, architecture, platform
tags, kept service models), so a second synth on the same machine never runs pip again. The
cache records the sha256 of every file it holds when it is built; each bundle is checked against
that record after the copy, and a cache that changed since is discarded and rebuilt.
"""

import fnmatch
import hashlib
import json
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
MANIFEST_FILE = ".bundle-manifest.json"
# Never shipped: compiled files depend on the Python that ran the synth, the manifest is the
# cache's own record, requirements.in is the unpinned source of requirements.txt.
UNSHIPPED = ("__pycache__", "*.pyc", "*.pyo", MANIFEST_FILE, "requirements.in")
IGNORED = shutil.ignore_patterns(*UNSHIPPED)
ASSET_EXCLUDES = list(UNSHIPPED)
CACHE_ENV = "IMPORTED_KEY_CDK_CACHE"
PIP_TIMEOUT_S = 600
# botocore ships a model for every AWS service (28 of its 30 MB). The bundle keeps those the
# bundled code makes clients for: the handler's KMS, Secrets Manager, CloudFormation (asked
# whether the stack declared a key), S3 (the due index) and CloudWatch (the fleet's figures),
# and crhelper's Lambda,
# EventBridge and Logs, which it creates when constructed (tests check the bundled code against
# this list); STS is small and kept for credentials. The files at
# the top of botocore/data (endpoints, partitions, retry rules, default configuration) stay.
BOTOCORE_SERVICES = (
    "kms", "secretsmanager", "cloudformation", "lambda", "events", "logs", "sts", "cloudwatch",
    "s3",
)  # fmt: skip
# Dropped after pip: boto3's resource models (the handler only makes clients) and console
# scripts, whose first line names the Python that ran the synth.
DROPPED = ("boto3/data", "bin")
# Part of the cache key and of the asset hash: change it when the bundle's recipe changes in a
# way the values above do not show.
RECIPE_VERSION = "2"


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


def recipe_digest(requirements: Path, python_version: str, architecture: str) -> str:
    """Identifies everything that decides the bundled dependencies, bar the wheels' own bytes,
    which the hashes in ``requirements`` pin."""
    parts = [RECIPE_VERSION, requirements.read_text(), python_version, architecture]
    parts += lambda_platforms(architecture) + list(BOTOCORE_SERVICES) + list(DROPPED)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def pip_command(
    requirements: Path, target: Path, python_version: str, architecture: str
) -> list[str]:
    command = [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-compile", "--no-input",
        "--require-hashes", "--only-binary=:all:", "--implementation", "cp",
        "--python-version", python_version,
        "--target", str(target), "--requirement", str(requirements),
    ]  # fmt: skip
    for platform in lambda_platforms(architecture):
        command += ["--platform", platform]
    return command


def _unshipped(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in UNSHIPPED)


def file_digests(root: Path) -> dict[str, str]:
    """sha256 of every file that ships from ``root``, by its path relative to ``root``."""
    digests = {}
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if not _unshipped(d)]
        for name in files:
            if not _unshipped(name):
                path = Path(directory, name)
                relative = path.relative_to(root).as_posix()
                digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def trim(installed: Path) -> None:
    """Drop what the handler never loads from a fresh install."""
    for relative in DROPPED:
        shutil.rmtree(installed / relative, ignore_errors=True)
    models = installed / "botocore" / "data"
    for entry in models.iterdir():
        if entry.is_dir() and entry.name not in BOTOCORE_SERVICES:
            shutil.rmtree(entry)


def cached_dependencies(requirements: Path, python_version: str, architecture: str) -> Path:
    """Directory with the handler's dependencies installed for the Lambda platform."""
    digest = recipe_digest(requirements, python_version, architecture)
    final = cache_root() / "dependencies" / f"py{python_version}-{architecture}-{digest}"
    # The manifest is written last: a directory without one is not a finished cache.
    if (final / MANIFEST_FILE).exists():
        return final
    # Without its manifest a cache cannot be checked, so it is never used.
    shutil.rmtree(final, ignore_errors=True)
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
        trim(staging)
        manifest = json.dumps(file_digests(staging), indent=0, sort_keys=True)
        (staging / MANIFEST_FILE).write_text(manifest + "\n")
        try:
            staging.rename(final)
        except OSError:
            # Another synth finished the same bundle first; theirs is as good as ours.
            if not (final / MANIFEST_FILE).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def changed_files(dependencies: Path, copy: Path) -> list[str]:
    """Paths in ``copy`` that differ from the manifest ``dependencies`` recorded when built."""
    try:
        recorded = json.loads((dependencies / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return [MANIFEST_FILE]
    found = file_digests(copy)
    return sorted(p for p in recorded.keys() | found.keys() if recorded.get(p) != found.get(p))


def bundle_dependencies(
    output: Path, requirements: Path, python_version: str, architecture: str
) -> None:
    """Copy the cached dependencies into the empty ``output``, checked against their manifest.

    The copy, not the cache, is checked: what reaches the asset is what was installed. A cache
    changed since it was built is discarded and rebuilt from the pinned wheels.
    """
    for attempt in range(2):
        dependencies = cached_dependencies(requirements, python_version, architecture)
        shutil.copytree(dependencies, output, dirs_exist_ok=True, ignore=IGNORED)
        changed = changed_files(dependencies, output)
        if not changed:
            return
        shutil.rmtree(output)
        output.mkdir()
        if attempt == 0:
            print(
                f"imported-key-cdk: {len(changed)} file(s) in the cached handler dependencies "
                f"{dependencies} changed since they were installed (e.g. {changed[0]}); "
                "rebuilding them.",
                file=sys.stderr,
            )
            shutil.rmtree(dependencies)
    raise RuntimeError(
        f"Bundling the ImportedKey handler failed: the dependencies rebuilt in {dependencies} "
        f"do not match their own manifest ({', '.join(changed[:5])})."
    )


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
        bundle_dependencies(
            output,
            self._source_dir / REQUIREMENTS_FILE,
            self._python_version,
            self._architecture,
        )
        shutil.copytree(
            self._source_dir, output / HANDLER_PACKAGE, dirs_exist_ok=True, ignore=IGNORED
        )
        return True
