"""imported-key-cdk: bring your own key material into AWS KMS from Secrets Manager."""

from importlib.metadata import PackageNotFoundError, version

from .fleet import FleetKey, ImportedKeyFleet, load_manifest
from .handler import ImportHandler
from .imported_key import ImportedKey
from .options import MaterialEncoding, MaterialExpiration, WrappingAlgorithm, WrappingKeySpec

try:
    __version__ = version("imported-key-cdk")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = [
    "FleetKey",
    "ImportHandler",
    "ImportedKey",
    "ImportedKeyFleet",
    "MaterialEncoding",
    "MaterialExpiration",
    "WrappingAlgorithm",
    "WrappingKeySpec",
    "load_manifest",
]
