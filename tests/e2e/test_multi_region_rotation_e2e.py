"""Rotating a multi-Region key with imported material: a primary and two replicas, each Region
deployed by its own stack and handler, on LocalStack with the shim's three phases, and (the tests
marked ``aws``) on a real account with ``make test-aws`` (Regions: ``support.regions``).

KMS's order (API, ImportKeyMaterial and RotateKeyOnDemand): (1) the new material into the
primary as NEW_KEY_MATERIAL, where it waits in PENDING_MULTI_REGION_IMPORT_AND_ROTATION;
(2) the same material into every replica as EXISTING_KEY_MATERIAL, after which the primary's
copy is PENDING_ROTATION; (3) RotateKeyOnDemand on the primary, which rotates the replicas with
it. Here phase 1 is the primary stack's deployment, phase 2 each replica stack's, and phase 3
the primary Region's sweep. Each phase is also interrupted (Lambda stopped right after the KMS
call that completes it) and the rotation is shown to finish on retry, every Region's key
encrypting and decrypting throughout.

Real KMS does in the background what the shim does at once: a new replica is Creating before it
is PendingImport, the primary learns that every replica holds its new material after a while,
and the replicas follow the primary's RotateKeyOnDemand shortly after. On a real account the
tests wait for those (``support.regions.settle``, bounded); on LocalStack they read once.
"""

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from support.binding import PlayedStacks
from support.events import import_properties
from support.keys import materials_document
from support.regions import (
    Regional,
    RegionPlan,
    await_replica,
    deploy_region,
    eventually,
    handler_of,
    import_in,
    plan_regions,
    replica_secret_arn,
    replicated_version,
)

from imported_key_handler import contract, registry
from imported_key_handler.errors import ImportFailure
from imported_key_handler.importer import PENDING_MULTI_REGION, PENDING_ROTATION, ImportResult
from imported_key_handler.sweep import Pacer, SweepReport, sweep

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient

pytestmark = pytest.mark.localstack

OLD, NEW = os.urandom(32), os.urandom(32)
REPLICAS = 2  # the family's replicas; a third Region, if there is one, is for a replica added later
RENEW_BEFORE = timedelta(days=30)
CONTEXT = {"purpose": "multi-region-rotation"}


class Interrupted(BaseException):
    """Lambda stopping the handler mid-call (a timeout, a crash): no ``except`` in the handler
    catches it, as none catches the end of its process."""


class Interrupter:
    """Stops the Region's handler right after (or before) one KMS call, once."""

    def __init__(self, kms: "KMSClient") -> None:
        self._armed: tuple[str, str, Callable[[dict[str, Any]], bool]] | None = None
        kms.meta.events.register("provide-client-params.kms", self._note)
        kms.meta.events.register("before-call.kms", self._before)
        kms.meta.events.register("after-call.kms", self._after)

    def arm(
        self,
        operation: str,
        *,
        when: str = "after",
        matching: Callable[[dict[str, Any]], bool] = lambda _: True,
    ) -> None:
        self._armed = (operation, when, matching)

    def _note(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if self._armed is not None:
            operation, when, matching = self._armed
            if model.name == operation and matching(params):
                context["interrupt"] = when

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        self._stop(model, context, "before")

    def _after(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        self._stop(model, context, "after")

    def _stop(self, model: Any, context: dict[str, Any], when: str) -> None:
        if context.get("interrupt") == when:
            self._armed = None
            raise Interrupted(f"the handler stopped {when} {model.name}")


@dataclass
class Family:
    """A multi-Region key: its id, each Region's deployment and secret, and what was declared."""

    key_id: str
    primary: Regional
    replicas: list[Regional]
    secrets: dict[str, str]  # Region -> the secret's ARN there
    versions: dict[str, str] = field(default_factory=dict)  # Region -> declared version
    interrupters: dict[str, Interrupter] = field(default_factory=dict)

    @property
    def regions(self) -> list[Regional]:
        return [self.primary, *self.replicas]

    @property
    def real(self) -> bool:
        return self.primary.real


@pytest.fixture
def plan(backend: Any) -> RegionPlan:
    return plan_regions(backend, needed=REPLICAS)


@pytest.fixture
def late_region(plan: RegionPlan) -> str:
    """A third replica Region, for a replica added after a rotation."""
    if len(plan.replicas) <= REPLICAS:
        pytest.skip(f"real AWS: no third replica Region besides {', '.join(plan.replicas)}")
    return plan.replicas[REPLICAS]


@pytest.fixture
def deployments(backend: Any, stacks: PlayedStacks, plan: RegionPlan) -> dict[str, Regional]:
    return {
        region: deploy_region(backend, stacks, region) for region in (plan.primary, *plan.replicas)
    }


def put_version(family: Family, regional: Regional, *materials: bytes) -> None:
    """The secret's new version in that Region; the stack declares it next. On LocalStack
    each Region's secret is its own copy (it cannot serve a replicated secret, see
    ``test_multi_region_e2e``). On a real account a replica's secret is read-only: the version
    is written to the primary's secret, and the Region declares the version that holds it
    once replication brought it there."""
    document = materials_document(*materials)
    if not family.real:
        secrets = regional.clients.secrets
        family.versions[regional.region] = secrets.put_secret_value(
            SecretId=family.secrets[regional.region], SecretString=document
        )["VersionId"]
        return
    primary = family.primary
    version = primary.clients.secrets.put_secret_value(
        SecretId=family.secrets[primary.region], SecretString=document
    )["VersionId"]
    if regional is not primary:
        version = replicated_version(regional, family.secrets[regional.region], document)
    family.versions[regional.region] = version


def deploy(
    family: Family,
    regional: Regional,
    action: str,
    stacks: PlayedStacks,
    monkeypatch: pytest.MonkeyPatch,
) -> ImportResult:
    """The Region's stack deploys its declared version: CloudFormation tags the key, then sends
    the import's Create or Update to the Region's handler."""
    properties = import_properties(
        family.key_id,
        family.secrets[regional.region],
        **{
            contract.PROP_WRAPPING_KEY_SPEC: "RSA_2048",
            contract.PROP_ROTATE_ON_MATERIAL_CHANGE: "true",
            contract.PROP_MATERIAL_VERSION_ID: family.versions[regional.region],
        },
    )
    return import_in(regional, properties, stacks, monkeypatch, action, RENEW_BEFORE)


def run_sweep(
    regional: Regional, monkeypatch: pytest.MonkeyPatch, now: datetime | None = None
) -> SweepReport:
    """The Region's scheduled sweep (its pacer's sleeps skipped: nothing here is throttled)."""
    with handler_of(regional, monkeypatch):
        return sweep(
            regional.clients,
            remaining_s=lambda: 900.0,
            now=(lambda: now) if now else (lambda: datetime.now(UTC)),
            pacer=Pacer(1.0, sleep=lambda _seconds: None),
        )


def replicate(family: Family, regional: Regional) -> None:
    """A replica of the key in ``regional``'s Region, and the secret there (a replica of the
    primary's on a real account, a secret of its own on LocalStack)."""
    primary = family.primary
    primary.kms.replicate_key(KeyId=family.key_id, ReplicaRegion=regional.region)
    if family.real:
        home = family.secrets[primary.region]
        primary.clients.secrets.replicate_secret_to_regions(
            SecretId=home, AddReplicaRegions=[{"Region": regional.region}]
        )
        family.secrets[regional.region] = replica_secret_arn(home, regional.region)
        current = primary.clients.secrets.get_secret_value(SecretId=home)["SecretString"]
        replicated_version(regional, family.secrets[regional.region], current)
    else:
        family.secrets[regional.region] = regional.clients.secrets.create_secret(
            Name=f"byok/{uuid.uuid4()}", SecretString="{}"
        )["ARN"]
    await_replica(regional, family.key_id)
    family.interrupters[regional.region] = Interrupter(regional.kms)


@pytest.fixture
def family(
    plan: RegionPlan,
    deployments: dict[str, Regional],
    stacks: PlayedStacks,
    monkeypatch: pytest.MonkeyPatch,
) -> Family:
    """A primary and two replicas, each imported by its own Region with the first material."""
    primary = deployments[plan.primary]
    key_id = primary.kms.create_key(Origin="EXTERNAL", MultiRegion=True)["KeyMetadata"]["KeyId"]
    secret = primary.clients.secrets.create_secret(Name=f"byok/{uuid.uuid4()}", SecretString="{}")
    family = Family(key_id, primary, [], {primary.region: secret["ARN"]})
    family.interrupters[primary.region] = Interrupter(primary.kms)
    put_version(family, primary, OLD)
    deploy(family, primary, "Create", stacks, monkeypatch)
    for region in plan.replicas[:REPLICAS]:
        replica = deployments[region]
        replicate(family, replica)
        family.replicas.append(replica)
        put_version(family, replica, OLD)
        deploy(family, replica, "Create", stacks, monkeypatch)
    return family


def metadata(regional: Regional, key_id: str) -> dict[str, Any]:
    return dict(regional.kms.describe_key(KeyId=key_id)["KeyMetadata"])


def material_states(regional: Regional, key_id: str) -> dict[str, str]:
    rotations = regional.kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    return {r["KeyMaterialId"]: r["KeyMaterialState"] for r in rotations["Rotations"]}


def holds(regional: Regional, key_id: str, material_id: str) -> bool:
    """The Region's key has that material imported (a replica may list the primary's new
    material before it imports it)."""
    rotations = regional.kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    return any(
        entry["KeyMaterialId"] == material_id and entry.get("ImportState") != "PENDING_IMPORT"
        for entry in rotations["Rotations"]
    )


def encrypt_everywhere(family: Family, label: str) -> dict[bytes, bytes]:
    """A ciphertext made in each Region, by plaintext (``label`` and the Region's name)."""
    made = {}
    for regional in family.regions:
        plaintext = f"{label} in {regional.region}".encode()
        made[plaintext] = regional.kms.encrypt(
            KeyId=family.key_id, Plaintext=plaintext, EncryptionContext=CONTEXT
        )["CiphertextBlob"]
    return made


def assert_usable_everywhere(family: Family, ciphertexts: dict[bytes, bytes]) -> None:
    """Every Region's key is Enabled, encrypts, and opens what every Region encrypted."""
    for regional in family.regions:
        assert metadata(regional, family.key_id)["KeyState"] == "Enabled", regional.region
        for plaintext, blob in ciphertexts.items():
            opened = regional.kms.decrypt(
                KeyId=family.key_id, CiphertextBlob=blob, EncryptionContext=CONTEXT
            )["Plaintext"]
            assert opened == plaintext, regional.region
    encrypt_everywhere(family, "still encrypting")


def current_ids(family: Family) -> set[str]:
    return {metadata(r, family.key_id)["CurrentKeyMaterialId"] for r in family.regions}


def rotated_ids(family: Family, new_id: str) -> set[str]:
    """``current_ids`` once a rotation to ``new_id`` reached every Region (a real account's
    replicas follow the primary's RotateKeyOnDemand shortly after)."""
    return eventually(family.real, lambda: current_ids(family), {new_id})


def settled_states(regional: Regional, family: Family, expected: dict[str, str]) -> dict[str, str]:
    """``material_states`` once they are ``expected`` (on a real account, see ``rotated_ids``)."""
    return eventually(family.real, lambda: material_states(regional, family.key_id), expected)


def due_now(regional: Regional, key_id: str) -> bool:
    clients = regional.clients
    entries = [e for e in registry.entries(clients.s3, clients.bucket) if e.key_id == key_id]
    assert len(entries) == 1, entries
    return entries[0].due <= datetime.now(UTC)


def phase_1(family: Family, stacks: PlayedStacks, monkeypatch: pytest.MonkeyPatch) -> str:
    """The primary's stack declares the new version; returns the new material's id."""
    put_version(family, family.primary, OLD, NEW)
    result = deploy(family, family.primary, "Update", stacks, monkeypatch)
    assert result.pending_material_id is not None
    return result.pending_material_id


def phase_2(
    family: Family,
    stacks: PlayedStacks,
    monkeypatch: pytest.MonkeyPatch,
    replicas: list[Regional] | None = None,
) -> None:
    phase_2_with(family, stacks, monkeypatch, NEW, replicas)


def phase_2_with(
    family: Family,
    stacks: PlayedStacks,
    monkeypatch: pytest.MonkeyPatch,
    new: bytes,
    replicas: list[Regional] | None = None,
) -> None:
    """Each replica's stack declares the version that adds ``new``."""
    for replica in family.replicas if replicas is None else replicas:
        put_version(family, replica, OLD, new)
        result = deploy(family, replica, "Update", stacks, monkeypatch)
        assert result.pending_material_id is None  # the primary's sweep rotates, not a replica
    if family.real:
        await_primary_sees_replicas(family)


def await_primary_sees_replicas(family: Family) -> None:
    """On a real account the primary may report PENDING_ROTATION for its new material only some
    time after the last replica imported it (the replicas are in other Regions), and its sweep
    rotates only then: once every replica holds the pending material, wait (bounded) for it."""
    pending = [
        material_id
        for material_id, state in material_states(family.primary, family.key_id).items()
        if state in (PENDING_MULTI_REGION, PENDING_ROTATION)
    ]
    if len(pending) != 1:
        return
    (new_id,) = pending
    if all(holds(replica, family.key_id, new_id) for replica in family.replicas):
        state = eventually(
            True,
            lambda: material_states(family.primary, family.key_id)[new_id],
            PENDING_ROTATION,
        )
        assert state == PENDING_ROTATION, f"every replica holds {new_id}, the primary says {state}"


def nth(count: int) -> Callable[[dict[str, Any]], bool]:
    """Matches the ``count``-th call it is asked about."""
    seen = [0]

    def matching(_params: dict[str, Any]) -> bool:
        seen[0] += 1
        return seen[0] == count

    return matching


@pytest.mark.aws
def test_three_phases_rotate_every_region_and_each_keeps_decrypting(
    family: Family, stacks: PlayedStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    (old_id,) = current_ids(family)  # the primary's material id in all three Regions
    before = encrypt_everywhere(family, "before")

    new_id = phase_1(family, stacks, monkeypatch)
    assert material_states(family.primary, family.key_id)[new_id] == PENDING_MULTI_REGION
    assert current_ids(family) == {old_id}
    assert due_now(family.primary, family.key_id)  # the sweep takes it from here
    # The sweep waits while a replica lacks it: RotateKeyOnDemand would be refused.
    waiting = run_sweep(family.primary, monkeypatch)
    assert (waiting.due, waiting.renewed, waiting.failed) == (1, 0, [])
    assert current_ids(family) == {old_id}
    assert due_now(family.primary, family.key_id)
    assert_usable_everywhere(family, before)

    first, second = family.replicas
    phase_2(family, stacks, monkeypatch, [first])
    assert material_states(family.primary, family.key_id)[new_id] == PENDING_MULTI_REGION
    assert material_states(first, family.key_id)[new_id] == PENDING_ROTATION
    assert run_sweep(family.primary, monkeypatch).renewed == 0
    assert current_ids(family) == {old_id}
    phase_2(family, stacks, monkeypatch, [second])
    assert material_states(family.primary, family.key_id)[new_id] == PENDING_ROTATION

    # Phase 3: the primary's sweep rotates it, and the replicas with it.
    done = run_sweep(family.primary, monkeypatch)
    assert (done.renewed, done.failed) == (1, [])
    assert rotated_ids(family, new_id) == {new_id}
    rotated = {old_id: "NON_CURRENT", new_id: "CURRENT"}
    for regional in family.regions:
        assert settled_states(regional, family, rotated) == rotated, regional.region
    assert not due_now(family.primary, family.key_id)  # back to its place in the window
    assert_usable_everywhere(family, {**before, **encrypt_everywhere(family, "after")})
    # The next sweep finds nothing due: the rotation is not repeated.
    assert run_sweep(family.primary, monkeypatch).due == 0


@pytest.mark.aws
def test_a_rotation_interrupted_in_phase_1_completes_on_retry(
    family: Family, stacks: PlayedStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The primary's handler stops right after KMS took the new material: CloudFormation rolls
    the stack back (the old version again), and the deployment's retry goes on from there."""
    (old_id,) = current_ids(family)
    before = encrypt_everywhere(family, "before")
    home = family.primary.region
    old_version = family.versions[home]
    put_version(family, family.primary, OLD, NEW)
    new_version = family.versions[home]
    family.interrupters[home].arm(
        "ImportKeyMaterial", matching=lambda params: params.get("ImportType") == "NEW_KEY_MATERIAL"
    )
    with pytest.raises(Interrupted):
        deploy(family, family.primary, "Update", stacks, monkeypatch)
    assert current_ids(family) == {old_id}
    assert_usable_everywhere(family, before)

    family.versions[home] = old_version  # the rollback
    rolled_back = deploy(family, family.primary, "Update", stacks, monkeypatch)
    assert rolled_back.pending_material_id is None
    assert not due_now(family.primary, family.key_id)
    assert_usable_everywhere(family, before)

    family.versions[home] = new_version  # the retry
    retried = deploy(family, family.primary, "Update", stacks, monkeypatch)
    new_id = retried.pending_material_id
    assert new_id is not None
    assert material_states(family.primary, family.key_id)[new_id] == PENDING_MULTI_REGION
    phase_2(family, stacks, monkeypatch)
    assert run_sweep(family.primary, monkeypatch).renewed == 1
    assert rotated_ids(family, new_id) == {new_id}
    assert_usable_everywhere(family, before)


@pytest.mark.aws
def test_a_rotation_interrupted_in_phase_2_completes_on_retry(
    family: Family, stacks: PlayedStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first replica's handler stops right after its Region took the new material (its
    second import): that stack rolls back and retries; the sweep waits throughout."""
    (old_id,) = current_ids(family)
    before = encrypt_everywhere(family, "before")
    new_id = phase_1(family, stacks, monkeypatch)
    first, second = family.replicas
    old_version = family.versions[first.region]
    put_version(family, first, OLD, NEW)
    family.interrupters[first.region].arm("ImportKeyMaterial", matching=nth(2))
    with pytest.raises(Interrupted):
        deploy(family, first, "Update", stacks, monkeypatch)
    assert material_states(first, family.key_id)[new_id] == PENDING_ROTATION
    assert_usable_everywhere(family, before)

    new_version = family.versions[first.region]
    family.versions[first.region] = old_version  # the replica stack's rollback
    deploy(family, first, "Update", stacks, monkeypatch)
    assert run_sweep(family.primary, monkeypatch).renewed == 0  # the second still lacks it
    assert current_ids(family) == {old_id}
    assert_usable_everywhere(family, before)

    family.versions[first.region] = new_version  # the retry
    deploy(family, first, "Update", stacks, monkeypatch)
    phase_2(family, stacks, monkeypatch, [second])
    assert run_sweep(family.primary, monkeypatch).renewed == 1
    assert rotated_ids(family, new_id) == {new_id}
    assert_usable_everywhere(family, before)


@pytest.mark.aws
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_rotation_interrupted_in_phase_3_completes_at_the_next_sweep(
    when: str, family: Family, stacks: PlayedStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep stops just before, or just after, RotateKeyOnDemand: the key stays due, and
    the next sweep rotates it, or finds it rotated, without rotating twice."""
    (old_id,) = current_ids(family)
    before = encrypt_everywhere(family, "before")
    new_id = phase_1(family, stacks, monkeypatch)
    phase_2(family, stacks, monkeypatch)
    family.interrupters[family.primary.region].arm("RotateKeyOnDemand", when=when)
    with pytest.raises(Interrupted):
        run_sweep(family.primary, monkeypatch)
    interrupted = {old_id} if when == "before" else {new_id}
    assert eventually(family.real, lambda: current_ids(family), interrupted) == interrupted
    assert due_now(family.primary, family.key_id)
    assert_usable_everywhere(family, before)

    resumed = run_sweep(family.primary, monkeypatch)
    assert (resumed.renewed, resumed.failed) == (int(when == "before"), [])
    assert rotated_ids(family, new_id) == {new_id}
    assert not due_now(family.primary, family.key_id)
    rotated = {old_id: "NON_CURRENT", new_id: "CURRENT"}
    assert settled_states(family.primary, family, rotated) == rotated  # one rotation, not two
    assert_usable_everywhere(family, before)


@pytest.mark.aws
def test_a_replica_added_later_receives_every_material(
    late_region: str,
    family: Family,
    deployments: dict[str, Regional],
    stacks: PlayedStacks,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = encrypt_everywhere(family, "before")
    new_id = phase_1(family, stacks, monkeypatch)
    phase_2(family, stacks, monkeypatch)
    run_sweep(family.primary, monkeypatch)
    assert rotated_ids(family, new_id) == {new_id}

    late = deployments[late_region]
    replicate(family, late)
    assert metadata(late, family.key_id)["KeyState"] == "PendingImport"
    family.replicas.append(late)
    put_version(family, late, OLD, NEW)
    deploy(family, late, "Create", stacks, monkeypatch)
    assert metadata(late, family.key_id)["CurrentKeyMaterialId"] == new_id
    primary_states = material_states(family.primary, family.key_id)
    assert settled_states(late, family, primary_states) == primary_states
    # It opens what the others encrypted before the rotation, with the older material.
    assert_usable_everywhere(family, {**before, **encrypt_everywhere(family, "after")})


def test_each_region_renews_every_material_of_its_rotated_key(
    family: Family,
    stacks: PlayedStacks,
    monkeypatch: pytest.MonkeyPatch,
    shim_clock: Callable[[datetime], None],
) -> None:
    before = encrypt_everywhere(family, "before")
    phase_1(family, stacks, monkeypatch)
    phase_2(family, stacks, monkeypatch)
    run_sweep(family.primary, monkeypatch)
    # 345 days on, every Region's materials are inside the 30-day window; each Region's own
    # sweep renews both materials of its own key.
    later = datetime.now(UTC) + timedelta(days=345)
    shim_clock(later)
    for regional in family.regions:
        report = run_sweep(regional, monkeypatch, now=later)
        assert (report.renewed, report.failed) == (1, []), regional.region
        rotations = regional.kms.list_key_rotations(
            KeyId=family.key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL"
        )["Rotations"]
        assert len(rotations) == 2
        assert all(r["ValidTo"] > later + timedelta(days=360) for r in rotations)
    assert_usable_everywhere(family, before)


@pytest.mark.aws
def test_a_replica_deployed_before_its_primary_is_refused_and_changes_nothing(
    family: Family, stacks: PlayedStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = family.replicas[0]
    states = material_states(first, family.key_id)
    put_version(family, first, OLD, NEW)
    with pytest.raises(ImportFailure, match="Deploy the primary key's stack") as refused:
        deploy(family, first, "Update", stacks, monkeypatch)
    assert "multi-Region replica" in refused.value.reason
    assert material_states(first, family.key_id) == states
    assert_usable_everywhere(family, encrypt_everywhere(family, "before"))


@pytest.mark.aws
def test_material_left_pending_by_a_rolled_back_deployment_is_named_with_its_fix(
    family: Family, stacks: PlayedStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Phase 1 ran, then the primary's stack rolled back for another reason: KMS keeps the
    material pending, and other new material is refused until it is deployed or deleted."""
    home = family.primary.region
    old_version = family.versions[home]
    stale_id = phase_1(family, stacks, monkeypatch)
    family.versions[home] = old_version
    deploy(family, family.primary, "Update", stacks, monkeypatch)

    other = os.urandom(32)
    put_version(family, family.primary, OLD, other)
    with pytest.raises(ImportFailure, match="pending rotation") as refused:
        deploy(family, family.primary, "Update", stacks, monkeypatch)
    command = (
        f"aws kms delete-imported-key-material --key-id {family.key_id} "
        f"--key-material-id {stale_id}"
    )
    assert command in refused.value.reason
    assert material_states(family.primary, family.key_id)[stale_id] == PENDING_MULTI_REGION

    # The fix it names, then the same deployment again.
    family.primary.kms.delete_imported_key_material(KeyId=family.key_id, KeyMaterialId=stale_id)
    other_id = deploy(family, family.primary, "Update", stacks, monkeypatch).pending_material_id
    assert other_id not in (None, stale_id)
    phase_2_with(family, stacks, monkeypatch, other)
    assert run_sweep(family.primary, monkeypatch).renewed == 1
    assert other_id is not None
    assert rotated_ids(family, other_id) == {other_id}
