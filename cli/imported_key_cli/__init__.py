"""The operator's command line for keys imported-key-cdk manages (``imported-keys``)."""

import sys

# What the ``cli`` extra brings (pyproject.toml); the library itself needs none of them.
_EXTRA = frozenset({"boto3", "botocore", "click", "cryptography", "rich"})


def main() -> None:
    """The console script: the command line, or how to install what it needs."""
    try:
        from .main import main as run
    except ModuleNotFoundError as missing:
        if (missing.name or "").split(".")[0] not in _EXTRA:
            raise
        sys.exit(
            f"imported-keys needs {missing.name}, which the library's cli extra installs: "
            "pip install 'imported-key-cdk[cli]'"
        )
    run()
