"""One deployment per Region, as the construct makes for a multi-Region key: that Region's
handler with its own clients, due index and stack, run as Lambda would run it there.

The multi-Region end-to-end suites play each Region's stack against the one LocalStack, which
serves every Region from its own store (and the shim relates a primary to its replicas).
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from imported_key_handler import contract
from imported_key_handler.renewal import FleetClients
from support.binding import TEST_HANDLER_ROLE_ID, PlayedStacks
from support.events import ACCOUNT_ID

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient


def stack_id_in(region: str, name: str = "keys") -> str:
    """The stack of ``region``: one per Region, as CDK requires, with the same name in each
    (see the README's secrets per Region)."""
    return (
        f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{name}/"
        f"{uuid.uuid5(uuid.NAMESPACE_URL, region)}"
    )


@dataclass
class Regional:
    """One Region's deployment: the handler's clients (its due index among them) and stack."""

    region: str
    clients: FleetClients
    stack_id: str

    @property
    def kms(self) -> "KMSClient":
        return self.clients.kms


def deploy_region(backend: Any, stacks: PlayedStacks, region: str) -> Regional:
    """The Region's handler clients on ``backend`` (anything with ``client(service, region)``),
    with a due index bucket of its own; CloudFormation is the played record, ``stacks``."""
    s3 = backend.client("s3", region)
    bucket = f"index-{region}-{uuid.uuid4()}"
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    clients = FleetClients(
        backend.client("kms", region),
        backend.client("secretsmanager", region),
        stacks.client(),
        s3,
        bucket,
    )
    return Regional(region, clients, stack_id_in(region))


@contextmanager
def handler_of(regional: Regional, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment the Region's handler runs in: its own stack, and its own clients for
    the code paths that build them (the custom resource's ``FleetClients.build``)."""
    with monkeypatch.context() as patch:
        patch.setenv(contract.ENV_HANDLER_ROLE_ID, TEST_HANDLER_ROLE_ID)
        patch.setenv(contract.ENV_HANDLER_STACK_ID, regional.stack_id)
        patch.setattr(FleetClients, "build", lambda: regional.clients)
        yield
