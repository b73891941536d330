"""Shared fixtures. Kept out of the repo root on purpose: a root conftest would put the repo
root on sys.path, where the ``constructs/`` source folder could shadow the PyPI package."""

import os

# Before aws_cdk starts its Node.js process: Node 20 is what this machine has.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def lambda_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The handler's Lambda asset for each architecture, bundled once per session."""
    # Imported here: aws_cdk takes seconds to load, and the pytest runs that some tests start
    # (tests/e2e/test_real_aws_switch.py) need not pay for it when they collect no CDK test.
    from support.synth import synth_with_bundling

    _, assets = synth_with_bundling(tmp_path_factory.mktemp("bundles"))
    return {arch: Path(path) for arch, path in assets.items()}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The mypy test first: on a fresh clone it keeps one core busy for about a minute, which
    overlaps the rest of the suite only if it starts early, not when its turn comes."""
    items.sort(key=lambda item: not item.nodeid.startswith("tests/lint/"))
