"""Fidelity shim for LocalStack 4.10's KMS key-material import; loaded into LocalStack only.

Why: LocalStack 4.10 imports key material into an ``EXTERNAL`` key but models little of what
real KMS does around it (see ``localstack/services/kms/provider.py``, ``import_key_material``:
"TODO actually set validTo", "TODO check if there was already a key imported for this kms key";
``delete_imported_key_material``: "TODO add support for key_material_id";
``rotate_key_on_demand``: "Rotation of imported keys is not supported yet"; ListKeyRotations
is not implemented at all; ``models.ON_DEMAND_ROTATION_LIMIT`` is 10). The handler under test
confirms an import the way the KMS API reference documents it, and rotates symmetric keys to
new imported material; without this shim every end-to-end run would look like a failed
confirmation, and LocalStack would silently accept requests real KMS refuses.

Each behaviour below names the KMS documentation it follows ("API" = the AWS KMS API
Reference, "DG" = the AWS KMS Developer Guide), quoted. What no documentation says and the
shim had to choose is marked "Assumption:".

Every key with imported material
  * ImportKeyMaterial refuses a ``ValidTo`` that is not in the future or lies more than 365
    days after the request, with ``ValidationException``. API, ImportKeyMaterial, ValidTo:
    "The value of this parameter must be a future date and time. The maximum value is 365
    days from the request date." Assumption: the error code (the API reference names none for
    this; ValidationException is KMS's common error for a parameter that breaks a constraint)
    and its message.
  * ImportKeyMaterial refuses material other than the first material the key ever took, with
    ``IncorrectKeyMaterialException``, for every key spec (RSA, ECC, HMAC, symmetric), also
    after that material was deleted. DG, importing key material: "For all KMS keys with
    EXTERNAL origin, the first key material imported into it becomes current and permanently
    associated with it." API, ImportKeyMaterial: "For asymmetric and HMAC keys, you cannot
    change the key material after the initial import." API, IncorrectKeyMaterialException:
    "...it is not the same key material that was previously imported...". Assumption:
    materials are compared byte for byte (the same private key in another encoding counts
    as other material; the handler always sends one encoding).
  * The response carries ``KeyId`` (the key ARN). API, ImportKeyMaterial response: KeyId,
    "The Amazon Resource Name (key ARN) of the KMS key into which key material was
    imported."
  * DescribeKey reports ``ValidTo`` while the key's imported material expires, and no
    ``ValidTo`` once it does not (or after DeleteImportedKeyMaterial). API, KeyMetadata,
    ValidTo: "This value is present only for KMS keys whose Origin is EXTERNAL and the
    ExpirationModel is KEY_MATERIAL_EXPIRES, otherwise this value is omitted."

Asymmetric and HMAC keys (one material only)
  * ImportKeyMaterial with ``ImportType`` or ``KeyMaterialId`` is refused with
    ``ValidationException``. DG, importing key material (step 4), says that only one key
    material can be associated with an asymmetric or HMAC key with EXTERNAL origin and that
    KMS rejects ImportKeyMaterial requests with the ImportType parameter for them; API,
    ImportKeyMaterial, KeyMaterialId: "This parameter is optional and only usable with
    symmetric encryption keys." Assumption: the error code.
  * Everything else (loading the material, ExpirationModel, key state) is LocalStack's own.

``EXTERNAL`` ``SYMMETRIC_DEFAULT`` keys (several materials)
  The key keeps the list of its key materials on the LocalStack key object (attribute
  ``imported_key_cdk_materials``, so it lives and dies with the key): the bytes, the key
  material ID, the state (``CURRENT`` / ``NON_CURRENT`` / ``PENDING_ROTATION``, and
  ``PENDING_MULTI_REGION_IMPORT_AND_ROTATION`` for a multi-Region primary, below), the import
  state (``IMPORTED`` / ``PENDING_IMPORT``), and each material's own ``ExpirationModel`` /
  ``ValidTo`` / description / rotation date. Where this section says ``PENDING_ROTATION``,
  either pending state is meant.

  * Key material IDs: ``sha256(key id + material)``, hex. API, ImportKeyMaterial,
    KeyMaterialId: "Whenever you import key material into a symmetric encryption key, KMS
    assigns a unique identifier to the key material based on the KMS key ID and the imported
    key material." Assumption: the derivation (KMS does not document it; real IDs differ).
  * ImportKeyMaterial, ``EXISTING_KEY_MATERIAL`` (the default): the first material becomes
    ``CURRENT``; a known one gets its ValidTo, expiration model and import state refreshed;
    unknown material, or a ``KeyMaterialId`` that does not name this material, is refused with
    ``IncorrectKeyMaterialException``. DG, importing key material (step 4), says the
    default ImportType is EXISTING_KEY_MATERIAL and that with it the material must be one
    previously associated with the key; API, KeyMaterialId: KMS "Matches the computed
    identifier against the specified key material ID".
  * ImportKeyMaterial, ``NEW_KEY_MATERIAL``: material the key already has is refused with
    ``IncorrectKeyMaterialException`` (API, IncorrectKeyMaterialException: "KMS expected new
    key material but the key material being imported is already associated with the KMS
    key"); ``KeyMaterialId`` with ``ValidationException`` (API: "You cannot specify a key
    material ID with ImportType set to NEW_KEY_MATERIAL"; Assumption: the error code); a
    second pending material with ``KMSInvalidStateException`` (Assumption: KMS documents one
    PENDING_ROTATION material at a time only implicitly, through RotateKeyOnDemand rotating
    to "that key material", and not the error). Otherwise the material is added as
    ``PENDING_ROTATION`` and the key keeps encrypting with its current material (API,
    RotationsListEntry, KeyMaterialState: "PENDING_ROTATION identifies key material that has
    been imported for on-demand key rotation but the rotation hasn't completed").
    LocalStack's own import (which loads the bytes into the crypto key) runs only when the
    material is or becomes ``CURRENT``. The response carries ``KeyMaterialId`` (API,
    ImportKeyMaterial response: "Identifies the imported key material").
  * RotateKeyOnDemand makes the imported pending material ``CURRENT``; the old one becomes
    ``NON_CURRENT`` and goes into LocalStack's ``previous_keys``, which ``KmsKey.decrypt``
    tries after the current material, so old ciphertexts still decrypt (API,
    KeyMaterialState: "KMS uses CURRENT key material for both encryption and decryption and
    NON_CURRENT key material only for decryption"). Without pending material:
    ``UnsupportedOperationException`` (API, RotateKeyOnDemand: "When you initiate on-demand
    key rotation on a symmetric encryption KMS key with imported key material, you must have
    already imported new key material and that key material's state should be
    PENDING_ROTATION"; Assumption: the error code); on a key pending import:
    ``KMSInvalidStateException`` (DG, key states: a key in PendingImport cannot be used).
    After 25 on-demand rotations of a key the next is refused with
    ``LimitExceededException``; the shim also sets LocalStack's own limit, for keys whose
    material LocalStack generates, to 25. DG, on-demand rotation: "You can perform on-demand
    key rotation a maximum of 25 times per KMS key."; DG, resource quotas: "If you have
    exceeded a resource limit, requests to create an additional resource of that type
    generate an LimitExceededException error message." (Older API reference pages say 10;
    the developer guide and its quota table say 25.)
  * DescribeKey reports ``CurrentKeyMaterialId`` (API, KeyMetadata: "Identifies the current
    key material"), and ``ValidTo`` is the earliest ValidTo of the materials permanently
    associated with the key and imported, whichever is current. API, KeyMetadata, ValidTo:
    "The earliest time at which any imported key material permanently associated with this
    KMS key expires." API, KeyMaterialState: "Key material in PENDING_ROTATION is not
    permanently associated with the KMS key", so pending material does not count.
    ``ExpirationModel`` is ``KEY_MATERIAL_EXPIRES`` if any of those materials expires, else
    ``KEY_MATERIAL_DOES_NOT_EXPIRE``. Assumption: how KMS sums up the expiration model of
    several materials (the API reference only ties ValidTo's presence to
    KEY_MATERIAL_EXPIRES); and that ValidTo stays reported while the key awaits the re-import
    of a deleted material. The shim keeps the key metadata in step after every change
    (DescribeKey itself is not patched).
  * ListKeyRotations (not implemented in LocalStack) lists the materials: the rotated-in ones
    (``ROTATIONS_ONLY``, the default) or all of them (``ALL_KEY_MATERIAL``). API,
    ListKeyRotations, IncludeKeyMaterial: "The default value of this parameter is
    ROTATIONS_ONLY... When you specify a value of ALL_KEY_MATERIAL, KMS adds the first key
    material and any imported key material pending rotation to the response." Assumption:
    the paging marker is a plain offset.
  * DeleteImportedKeyMaterial deletes the material named by ``KeyMaterialId``, or the current
    one (DG: "The key-material-id parameter is optional and if you do not specify it, AWS KMS
    will delete the current key material."). Deleting any material that is not
    ``PENDING_ROTATION`` puts the key in ``PendingImport`` until that material is imported
    again (DG: "the deletion or expiration of any key material in a state other than
    PENDING_ROTATION changes the key state to Pending import"); pending material is dropped
    and the key left alone (API, KeyMaterialState: "You can delete this key material and
    import different key material in its place."). The response carries ``KeyId`` and
    ``KeyMaterialId``.

Multi-Region keys with imported material (an ``EXTERNAL`` primary key and its replicas)
  LocalStack's ReplicateKey deep-copies the primary key object (``copy.deepcopy``: its crypto
  key, key state, ExpirationModel, ValidTo, CurrentKeyMaterialId and the shim's
  ``imported_key_cdk_materials``), so its replica of an EXTERNAL key could encrypt at once, with
  the primary's material and expiry. The shim undoes that and keeps each Region's key its own.
  LocalStack serves every Region on one endpoint, one store per Region; a request's Region is
  the one it is signed for.

  * A replica carries only the tags its ReplicateKey request gives, not the primary's
    (LocalStack's deep copy took them too). API, ReplicateKey, Tags: "Tags are not a shared
    property of multi-Region keys. You can specify the same tags or different tags for each key
    in a set of related multi-Region keys. KMS does not synchronize this property."

  * ReplicateKey of an EXTERNAL primary gives a replica in ``PendingImport`` (``Enabled``
    false) with no material, no ``ExpirationModel`` and no ``ValidTo``, whether or not the
    primary has material; it cannot be used until its own import. API, ReplicateKey: "If you
    replicate a multi-Region primary key with imported key material, the replica key is created
    with no key material. You must import the same key material that you imported into the
    primary key." DG, importing key material into multi-Region keys: "AWS KMS does not copy or
    synchronize the key material from a primary key with imported key material to its replica
    keys." The replica gets a new LocalStack crypto key, as any new EXTERNAL key does, so
    nothing of the primary's material is in it.
  * A symmetric replica knows its primary's permanently associated materials (``CURRENT``,
    ``NON_CURRENT``) by key material ID, state and rotation date, each ``PENDING_IMPORT`` until
    imported in the replica's Region, also those the primary takes after the replica was made;
    it is ``Enabled`` once all of them are imported there. API, ReplicateKey: related
    multi-Region keys "have the same key ID and key material"; API, ImportKeyMaterial: "For
    symmetric encryption keys, you will need to import all of the key materials associated
    with the KMS key to change its state to Enabled." The IDs are the primary's because they
    derive from the key ID, which replicas share (API, KeyMaterialId: "based on the KMS key ID
    and the imported key material"). Assumption: that a replica awaiting its import already
    reports the primary's ``CurrentKeyMaterialId`` and lists the materials (as the shim does
    for any key awaiting the re-import of deleted material; KMS documents neither way).
  * ImportKeyMaterial into a replica, with its own Region's GetParametersForImport (LocalStack
    keeps import tokens per Region): material its primary has is accepted and recorded with
    the replica's own ExpirationModel, ValidTo and description (the primary's stay as they
    are); other material, and any material while the primary has none, is refused with
    ``IncorrectKeyMaterialException`` and changes nothing; ``NEW_KEY_MATERIAL`` is refused with
    ``UnsupportedOperationException``. API, ImportKeyMaterial: "You cannot directly import new
    key material into the replica Region keys."; API, ImportType: "The import type for the
    replica Region key should be EXISTING_KEY_MATERIAL."; DG, importing key material into
    multi-Region keys: "You must import the same key material into related primary and replica
    keys." and "You set the expiration model and expiration dates for each key independently
    when you import the key material." The 365-day ValidTo limit and the shim's clock apply as
    for every key. HMAC and asymmetric replicas likewise take only the material first imported
    into their primary, and nothing while it has none. Assumptions: the error code for
    NEW_KEY_MATERIAL (none documented); that an omitted ImportType means EXISTING_KEY_MATERIAL
    for a replica's first import too (the API reference's NEW_KEY_MATERIAL default for a key's
    first import is written for keys that may take new material).
  * Each Region's key state, material and expiry are its own: DeleteImportedKeyMaterial (and,
    were it modelled, expiry) in one Region leaves the related keys as they are. DG, importing
    key material into multi-Region keys: "The key states of related multi-Region keys are
    independent of each other. For example, if the key material in the primary key expires,
    its replica keys are unaffected."; API, DeleteImportedKeyMaterial: "If you delete any key
    material of a replica Region key, the primary Region key and other replica Region keys
    remain unchanged."
  * On-demand rotation of a symmetric multi-Region key, in three phases. (1) ImportKeyMaterial
    with ``NEW_KEY_MATERIAL`` into the primary: the material waits there in
    ``PENDING_MULTI_REGION_IMPORT_AND_ROTATION`` while any replica lacks it
    (``PENDING_ROTATION`` at once for a primary without replicas). (2) Imported as
    ``EXISTING_KEY_MATERIAL`` into a replica, it waits there in ``PENDING_ROTATION`` while the
    replica keeps encrypting with its current material; once every replica has it, the
    primary's turns ``PENDING_ROTATION``. (3) RotateKeyOnDemand on the primary makes it
    ``CURRENT`` in the primary and in every replica, with the primary's rotation date, and the
    old material ``NON_CURRENT`` (each Region still decrypts with it). RotateKeyOnDemand before
    phase 2 is complete, or on a replica, is refused with ``UnsupportedOperationException``.
    API, ImportKeyMaterial: "Call ImportKeyMaterial on the primary Region key with the
    ImportTypeset to NEW_KEY_MATERIAL. Call ImportKeyMaterial on the replica Region key with the
    ImportType set to EXISTING_KEY_MATERIAL using the same key material imported to the primary
    Region key. You must do this for every replica Region key before you can perform the
    RotateKeyOnDemand operation on the primary Region key." API, KeyMaterialState: "The key
    material state PENDING_MULTI_REGION_IMPORT_AND_ROTATION is unique to multi-region,
    symmetric encryption keys with imported key material. It indicates key material that has
    been imported into the primary Region key but not all of the replica Region keys. When this
    key material is imported in to all of the replica Region keys, the key material state will
    change to PENDING_ROTATION." API, RotateKeyOnDemand: "To perform on-demand rotation of a set
    of related multi-Region keys, import new key material in the primary Region key, import the
    same key material in each replica Region key, and invoke the on-demand rotation on the
    primary Region key." Assumptions: the state of a replica's copy (``PENDING_ROTATION``: the
    API reference defines the multi-Region state for the primary's material only); the error
    codes; that the primary's state follows its replicas at every moment, so a replica added,
    or a replica's copy deleted, after phase 2 puts it back in
    ``PENDING_MULTI_REGION_IMPORT_AND_ROTATION`` (every replica the primary lists counts, also
    one pending deletion).
  * DeleteImportedKeyMaterial of the primary's pending material deletes the replicas' copies
    too; of a replica's copy, only that copy. API, DeleteImportedKeyMaterial: "When you delete
    the key material of a primary Region key that is in PENDING_ROTATION or
    PENDING_MULTI_REGION_IMPORT_AND_ROTATIONstate, you'll also be deleting the key materials
    for the replica Region keys."
  * LocalStack's own checks stay: which primaries it replicates (it refuses a ``Disabled``
    one with ``DisabledException``, not checked against KMS), ``AlreadyExistsException`` for a
    second replica in a Region.

Not modelled (LocalStack gaps that stay): material does not expire at its ValidTo (the
time-warp test checks ValidTo itself); automatic rotation; a new replica's transient
``Creating`` state; UpdatePrimaryRegion (not implemented in LocalStack).

The shim's clock is the test's: when the file named by ``IMPORTED_KEY_CDK_SHIM_CLOCK`` (set
by ``tests/support/localstack.py``, one file per LocalStack) holds an ISO 8601 time, the shim
takes that as "now" for the ValidTo limits and rotation dates; otherwise the real time. This
is how the time-warp tests move KMS's clock along with the handler's, so a renewal a year
ahead is checked against the 365-day limit of its own day.

One more thing, for the workplace rather than for KMS: LocalStack 4.10 ignores the host part of
``GATEWAY_LISTEN`` for IPv4 (``runtime/server/twisted.py``, "TODO: interface = host?") and
listens on every interface. The shim makes IPv4 server endpoints default to 127.0.0.1.

And one for the test suite's time: LocalStack makes a new RSA key pair for every
GetParametersForImport (its wrapping key) and every RSA key it creates, about 0.5 s of CPU for
RSA_4096, which was most of the emulator's work in a test run. The shim has it build each new
RSA key from two primes of keys it generated before, a pair of primes never used together
before: every key handed out still has its own modulus, of exactly its size, so each
GetParametersForImport still answers with a new public key (material wrapped for another one
cannot be imported with its token), while a handful of generated keys serve a whole run. Keys
sharing primes are worthless outside a test, which is all these are for.

It is a ``sitecustomize`` so that it runs before LocalStack loads its services; put this
directory on ``PYTHONPATH`` of the LocalStack process only. If the code it patches or relies on
has moved (a LocalStack upgrade), it stops the interpreter with ``SystemExit``: ``site``
swallows any other exception from ``sitecustomize`` and LocalStack would then start unpatched
and quietly.
"""

import dataclasses
import datetime
import functools
import hashlib
import importlib
import inspect
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

_PROVIDER_MODULE = "localstack.services.kms.provider"
_MODELS_MODULE = "localstack.services.kms.models"
_API_MODULE = "localstack.aws.api.kms"
_EXCEPTIONS_MODULE = "localstack.services.kms.exceptions"
_EXPECTED_PARAMETERS: dict[str, tuple[str, ...]] = {
    # valid_to first: the self-check names it as the first missing parameter of a stub.
    "import_key_material": (
        "self",
        "context",
        "key_id",
        "valid_to",
        "import_token",
        "encrypted_key_material",
        "expiration_model",
        "import_type",
        "key_material_description",
        "key_material_id",
    ),
    "delete_imported_key_material": ("self", "context", "key_id", "key_material_id"),
    "rotate_key_on_demand": ("self", "context", "request"),
    "replicate_key": ("self", "context", "request"),
    "list_key_rotations": (
        "self",
        "context",
        "key_id",
        "include_key_material",
        "limit",
        "marker",
    ),
    "_get_kms_key": (
        "account_id",
        "region_name",
        "any_type_of_key_id",
        "any_key_state_allowed",
        "enabled_key_allowed",
        "disabled_key_allowed",
    ),
    "_get_store": ("account_id", "region_name"),
    "_parse_key_id": ("key_id_or_arn", "context"),
    "_decrypt_wrapped_key_material": ("self", "import_state", "encrypted_key_material"),
}
# How LocalStack's dispatcher calls each patched handler: with the request dict (False) or
# with keyword arguments (True). The wrappers below are written for exactly these.
_EXPECTED_EXPANSION = {
    "import_key_material": True,
    "delete_imported_key_material": True,
    "rotate_key_on_demand": False,
    "list_key_rotations": True,
    "replicate_key": False,
}
# Printed into LocalStack's log so the test harness can tell the shim is really active.
MARKER = "imported-key-cdk localstack shim: KMS ImportKeyMaterial patched"

_KEY_MATERIAL_EXPIRES = "KEY_MATERIAL_EXPIRES"
_EXISTING = "EXISTING_KEY_MATERIAL"
_NEW = "NEW_KEY_MATERIAL"
_CURRENT = "CURRENT"
_NON_CURRENT = "NON_CURRENT"
_PENDING_ROTATION = "PENDING_ROTATION"
_PENDING_MULTI_REGION = "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"
# Material imported for an on-demand rotation that has not happened yet: not permanently
# associated with the key (API, KeyMaterialState).
_PENDING_STATES = frozenset({_PENDING_ROTATION, _PENDING_MULTI_REGION})
_REPLICA = "REPLICA"
_IMPORTED = "IMPORTED"
_PENDING_IMPORT = "PENDING_IMPORT"
_ALL_KEY_MATERIAL = "ALL_KEY_MATERIAL"
_ROTATIONS_ONLY = "ROTATIONS_ONLY"
_MATERIALS_ATTRIBUTE = "imported_key_cdk_materials"
_DEFAULT_LIST_LIMIT = 100
_SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
# KMS's documented limits (see the module docstring for the sentences they come from).
ON_DEMAND_ROTATION_LIMIT = 25
MAX_VALIDITY = datetime.timedelta(days=365)
# Names a file holding the test's "now" (ISO 8601); set per LocalStack by the test support.
CLOCK_ENVIRONMENT = "IMPORTED_KEY_CDK_SHIM_CLOCK"
_ORIGINAL_ATTRIBUTE = "imported_key_cdk_original_material"
# LocalStack serves requests from several threads; material bookkeeping is read-modify-write.
_LOCK = threading.RLock()


def _fail(reason: str) -> NoReturn:
    raise SystemExit(
        f"imported-key-cdk localstack shim ({__file__}): {reason}. The LocalStack KMS provider "
        "no longer looks like the one this shim was written for (4.10); check what the new "
        "version models itself (ValidTo, key material IDs, rotation of imported keys) and "
        "update or remove the shim."
    )


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as error:
        _fail(f"cannot import {name}: {error}")


def _attribute(module_name: str, name: str) -> Any:
    value = getattr(_module(module_name), name, None)
    if value is None:
        _fail(f"{module_name}.{name} is missing")
    return value


def _provider_class() -> type[Any]:
    provider: Any = getattr(_module(_PROVIDER_MODULE), "KmsProvider", None)
    if not isinstance(provider, type):
        _fail(f"{_PROVIDER_MODULE}.KmsProvider is missing")
    for name, expected in _EXPECTED_PARAMETERS.items():
        function = inspect.getattr_static(provider, name, None)
        if isinstance(function, staticmethod):
            function = function.__func__
        if not callable(function):
            _fail(f"KmsProvider.{name} is missing")
        parameters = inspect.signature(function).parameters
        missing = [parameter for parameter in expected if parameter not in parameters]
        if missing:
            _fail(f"KmsProvider.{name} has no parameter(s) {', '.join(missing)}")
    for name, expanded in _EXPECTED_EXPANSION.items():
        if _handler_expansion(provider, name) is not expanded:
            _fail(f"KmsProvider.{name} is no longer a handler with expand={expanded}")
    return provider


def _handler_expansion(provider: type[Any], name: str) -> bool | None:
    """How LocalStack calls handler ``name``: the most derived ``@handler`` in the MRO decides
    (``localstack.aws.skeleton.create_dispatch_table``)."""
    for cls in provider.__mro__:
        expanded = getattr(cls.__dict__.get(name), "expand_parameters", None)
        if expanded is not None:
            return bool(expanded)
    return None


class _LocalStack:
    """What the shim uses of LocalStack besides the provider, checked once at start-up."""

    def __init__(self) -> None:
        self.incorrect_key_material = _attribute(_API_MODULE, "IncorrectKeyMaterialException")
        self.invalid_state = _attribute(_API_MODULE, "KMSInvalidStateException")
        self.unsupported = _attribute(_API_MODULE, "UnsupportedOperationException")
        self.not_found = _attribute(_API_MODULE, "NotFoundException")
        self.limit_exceeded = _attribute(_API_MODULE, "LimitExceededException")
        self.invalid_marker = _attribute(_API_MODULE, "InvalidMarkerException")
        self.validation = _attribute(_EXCEPTIONS_MODULE, "ValidationException")
        self.models = _module(_MODELS_MODULE)
        # Replicas live in the store of their own Region; the shim finds a key's relatives here.
        self.stores = _attribute(_MODELS_MODULE, "kms_stores")
        self.crypto_key = _attribute(_MODELS_MODULE, "KmsCryptoKey")
        if not isinstance(getattr(self.models, "ON_DEMAND_ROTATION_LIMIT", None), int):
            _fail(f"{_MODELS_MODULE}.ON_DEMAND_ROTATION_LIMIT is missing")
        kms_key = _attribute(_MODELS_MODULE, "KmsKey")
        crypto_key = _attribute(_MODELS_MODULE, "KmsCryptoKey")
        if not callable(getattr(crypto_key, "load_key_material", None)):
            _fail(f"{_MODELS_MODULE}.KmsCryptoKey.load_key_material is missing")
        # Old ciphertexts decrypt after a rotation only because KmsKey.decrypt tries these.
        if "previous_keys" not in inspect.getsource(kms_key.decrypt):
            _fail(f"{_MODELS_MODULE}.KmsKey.decrypt no longer tries previous_keys")


@dataclasses.dataclass
class _Material:
    """One key material associated with an EXTERNAL symmetric key, as KMS keeps it."""

    material_id: str
    material: bytes = dataclasses.field(repr=False)
    state: str
    import_state: str = _IMPORTED
    expiration_model: str | None = None
    valid_to: datetime.datetime | None = None
    description: str | None = None
    rotation_date: datetime.datetime | None = None


def _materials(key: Any) -> list[_Material]:
    materials: list[_Material] | None = getattr(key, _MATERIALS_ATTRIBUTE, None)
    if materials is None:
        materials = []
        setattr(key, _MATERIALS_ATTRIBUTE, materials)
    return materials


def _in_state(materials: list[_Material], state: str) -> _Material | None:
    return next((material for material in materials if material.state == state), None)


def _pending(materials: list[_Material]) -> _Material | None:
    """The material imported for a rotation still to come, in either pending state."""
    return next((material for material in materials if material.state in _PENDING_STATES), None)


def _is_replica(key: Any) -> bool:
    """A multi-Region replica key (LocalStack's ``MultiRegionKeyType`` is a ``StrEnum``)."""
    configuration = key.metadata.get("MultiRegionConfiguration") or {}
    return bool(configuration.get("MultiRegionKeyType") == _REPLICA)


def _primary_of(stores: Any, replica: Any) -> Any | None:
    """The primary key of a replica, from its own Region's store (``None`` if it is gone)."""
    metadata = replica.metadata
    region = metadata["MultiRegionConfiguration"]["PrimaryKey"]["Region"]
    return stores[metadata["AWSAccountId"]][region].keys.get(metadata["KeyId"])


def _replicas_of(stores: Any, primary: Any) -> list[Any]:
    metadata = primary.metadata
    configuration = metadata.get("MultiRegionConfiguration") or {}
    replicas = []
    for entry in configuration.get("ReplicaKeys") or []:
        replica = stores[metadata["AWSAccountId"]][entry["Region"]].keys.get(metadata["KeyId"])
        if replica is not None:
            replicas.append(replica)
    return replicas


def _mirror(replica: Any, primary: Any) -> None:
    """Give a replica the primary's permanently associated materials, by ID, state and rotation
    date; its own import state, bytes and expiry stay its own (KMS does not copy imported
    material). A material pending rotation in the primary joins the replica only when it is
    imported there; once the primary drops it, so does the replica."""
    theirs = _materials(primary)
    mine = _materials(replica)
    own = {material.material_id: material for material in mine}
    for source in theirs:
        if source.state in _PENDING_STATES:
            continue
        target = own.get(source.material_id)
        if target is None:
            target = _Material(source.material_id, b"", source.state, import_state=_PENDING_IMPORT)
            mine.append(target)
        target.state = source.state
        target.rotation_date = source.rotation_date
    order = {material.material_id: index for index, material in enumerate(theirs)}
    mine[:] = sorted(
        (material for material in mine if material.material_id in order),
        key=lambda material: order[material.material_id],
    )


def _settle(stores: Any, primary: Any) -> None:
    """After any change to a multi-Region key or one of its relatives: bring every replica in
    line with the primary, then name the state of the primary's pending material.

    API, KeyMaterialState: PENDING_MULTI_REGION_IMPORT_AND_ROTATION "indicates key material that
    has been imported into the primary Region key but not all of the replica Region keys. When
    this key material is imported in to all of the replica Region keys, the key material state
    will change to PENDING_ROTATION." A primary without replicas goes straight to
    PENDING_ROTATION, as a single-Region key does.
    """
    replicas = _replicas_of(stores, primary)
    for replica in replicas:
        if not _may_rotate(replica):
            continue
        _mirror(replica, primary)
        current = _in_state(_materials(replica), _CURRENT)
        if current is not None and current.import_state == _IMPORTED:
            replica.crypto_key.load_key_material(current.material)
        _sync(replica)
    pending = _pending(_materials(primary))
    if pending is not None:
        everywhere = all(
            any(
                material.material_id == pending.material_id and material.import_state == _IMPORTED
                for material in _materials(replica)
            )
            for replica in replicas
        )
        pending.state = _PENDING_ROTATION if everywhere else _PENDING_MULTI_REGION
    _sync(primary)


def _may_rotate(key: Any) -> bool:
    """Keys that may hold several materials: EXTERNAL and SYMMETRIC_DEFAULT."""
    metadata = key.metadata
    return bool(
        metadata.get("Origin") == "EXTERNAL" and metadata.get("KeySpec") == _SYMMETRIC_DEFAULT
    )


def _material_id(key: Any, material: bytes) -> str:
    return hashlib.sha256(str(key.metadata["KeyId"]).encode("utf-8") + material).hexdigest()


def _now() -> datetime.datetime:
    """The test's clock if it set one (see ``CLOCK_ENVIRONMENT``), else the real time."""
    path = os.environ.get(CLOCK_ENVIRONMENT)
    if path:
        try:
            with open(path, encoding="utf-8") as clock:
                text = clock.read().strip()
        except FileNotFoundError:
            text = ""
        if text:
            return _aware(datetime.datetime.fromisoformat(text))
    return datetime.datetime.now(datetime.UTC)


def _aware(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _check_valid_to(localstack: "_LocalStack", expiration_model: str, valid_to: Any) -> None:
    if expiration_model != _KEY_MATERIAL_EXPIRES or not isinstance(valid_to, datetime.datetime):
        return  # a missing ValidTo is LocalStack's own check
    now = _now()
    ahead = _aware(valid_to) - now
    if ahead <= datetime.timedelta(0) or ahead > MAX_VALIDITY:
        raise localstack.validation(
            f"ValidTo {valid_to.isoformat()} is not a future date and time at most "
            f"{MAX_VALIDITY.days} days from the request date ({now.isoformat()})."
        )


def _sync(key: Any) -> None:
    """Bring LocalStack's view of the key in line with its materials.

    The metadata reports the current material's ID and, over the imported materials that are
    permanently associated with the key (all but a pending one), the earliest ValidTo and
    whether any expires; ``previous_keys`` holds the imported non-current materials; the key
    awaits import while any material other than a pending one is deleted.
    """
    materials = _materials(key)
    current = _in_state(materials, _CURRENT)
    if current is None:
        return
    metadata = key.metadata
    metadata["CurrentKeyMaterialId"] = current.material_id
    associated = [
        material
        for material in materials
        if material.state not in _PENDING_STATES and material.import_state == _IMPORTED
    ]
    expiring = [
        material.valid_to
        for material in associated
        if material.expiration_model == _KEY_MATERIAL_EXPIRES and material.valid_to is not None
    ]
    if expiring:
        metadata["ExpirationModel"] = _KEY_MATERIAL_EXPIRES
        metadata["ValidTo"] = min(expiring, key=_aware)
    else:
        metadata.pop("ValidTo", None)
        if associated:
            metadata["ExpirationModel"] = "KEY_MATERIAL_DOES_NOT_EXPIRE"
        else:
            metadata.pop("ExpirationModel", None)
    key.previous_keys = [
        material.material
        for material in materials
        if material.state == _NON_CURRENT and material.import_state == _IMPORTED
    ]
    awaiting = any(
        material.import_state == _PENDING_IMPORT and material.state not in _PENDING_STATES
        for material in materials
    )
    if metadata.get("KeyState") == "PendingDeletion":
        return  # KMS leaves a key pending deletion in that state
    if awaiting:
        metadata["KeyState"] = "PendingImport"
        metadata["Enabled"] = False
    elif metadata.get("KeyState") == "PendingImport":
        metadata["KeyState"] = "Enabled"
        metadata["Enabled"] = True


def _patch(provider: type[Any], localstack: _LocalStack) -> None:
    original_import: Callable[..., Any] = provider.import_key_material
    original_delete: Callable[..., Any] = provider.delete_imported_key_material
    original_rotate: Callable[..., Any] = provider.rotate_key_on_demand
    original_list_rotations: Callable[..., Any] = provider.list_key_rotations
    original_replicate: Callable[..., Any] = provider.replicate_key
    stores = localstack.stores
    import_signature = inspect.signature(original_import)
    delete_signature = inspect.signature(original_delete)
    list_signature = inspect.signature(original_list_rotations)

    def importable_key(self: Any, context: Any, key_id: str) -> Any:
        # The same lookup LocalStack's import and delete do, so the same errors come first.
        return self._get_kms_key(
            context.account_id,
            context.region,
            key_id,
            enabled_key_allowed=True,
            disabled_key_allowed=True,
        )

    def head(key: Any) -> Any:
        """The key whose family ``_settle`` brings in line: a replica's primary, else the key."""
        if _is_replica(key):
            primary = _primary_of(stores, key)
            if primary is not None:
                return primary
        return key

    def plain_import(self: Any, context: Any, key_id: str, call: inspect.BoundArguments) -> Any:
        """LocalStack's import, for keys with one material: only ever that material."""
        arguments = call.arguments
        store = self._get_store(context.account_id, context.region)
        token = arguments.get("import_token")
        import_state = store.imports.get(
            token.decode("utf-8") if isinstance(token, bytes) else token
        )
        key, fingerprint = None, None
        if import_state is not None:  # else LocalStack's import raises its NotFoundException
            key = importable_key(self, context, key_id)
            for name in ("import_type", "key_material_id"):
                if arguments.get(name) is not None:
                    raise localstack.validation(
                        f"{name} is only valid for symmetric encryption keys; KMS key "
                        f"{key.metadata['Arn']} is {key.metadata.get('KeySpec')}."
                    )
            material = self._decrypt_wrapped_key_material(
                import_state, arguments["encrypted_key_material"]
            )
            fingerprint = _material_id(key, material)
            original = getattr(key, _ORIGINAL_ATTRIBUTE, None)
            if _is_replica(key):
                # Only what the primary took; nothing while it took none (KMS copies nothing
                # to a replica, and a replica takes no new material).
                primary = _primary_of(stores, key)
                original = getattr(primary, _ORIGINAL_ATTRIBUTE, None) or "(none yet)"
            if original is not None and original != fingerprint:
                raise localstack.incorrect_key_material(
                    f"The key material in the request is not the key material of KMS key "
                    f"{key.metadata['Arn']}: a {key.metadata.get('KeySpec')} key only ever "
                    "takes the material first imported into it."
                )
        response = original_import(*call.args, **call.kwargs)
        if key is not None:
            setattr(key, _ORIGINAL_ATTRIBUTE, fingerprint)
        metadata = self._get_kms_key(
            context.account_id, context.region, key_id, any_key_state_allowed=True
        ).metadata
        valid_to = call.arguments.get("valid_to")
        if metadata.get("ExpirationModel") == _KEY_MATERIAL_EXPIRES and valid_to is not None:
            metadata["ValidTo"] = valid_to
        else:
            metadata.pop("ValidTo", None)
        response = dict(response or {})
        response["KeyId"] = metadata["Arn"]
        return response

    # LocalStack dispatches by method name with keyword arguments (or the request dict, for
    # expand=False handlers), so the wrappers keep the name and the handler attributes
    # (functools.wraps) and take whatever the original takes.
    @functools.wraps(original_import)
    def import_key_material(self: Any, context: Any, key_id: str, *args: Any, **kwargs: Any) -> Any:
        call = import_signature.bind(self, context, key_id, *args, **kwargs)
        arguments = call.arguments
        _check_valid_to(
            localstack,
            arguments.get("expiration_model") or _KEY_MATERIAL_EXPIRES,
            arguments.get("valid_to"),
        )
        with _LOCK:
            store = self._get_store(context.account_id, context.region)
            token = arguments.get("import_token")
            import_state = store.imports.get(
                token.decode("utf-8") if isinstance(token, bytes) else token
            )
            key = None if import_state is None else importable_key(self, context, key_id)
            if key is None or not _may_rotate(key):
                # An unknown token: LocalStack's import raises its own NotFoundException.
                return plain_import(self, context, key_id, call)
            arn = key.metadata["Arn"]
            import_type = arguments.get("import_type") or _EXISTING
            if import_type not in (_EXISTING, _NEW):
                raise localstack.validation(
                    f"1 validation error detected: Value '{import_type}' at 'importType' failed "
                    f"to satisfy constraint: Member must satisfy enum value set: [{_NEW}, "
                    f"{_EXISTING}]"
                )
            requested_id = arguments.get("key_material_id")
            if import_type == _NEW and requested_id is not None:
                raise localstack.validation(
                    f"KeyMaterialId cannot be specified when ImportType is {_NEW}: KMS assigns "
                    "the ID of new key material."
                )
            expiration_model = arguments.get("expiration_model") or _KEY_MATERIAL_EXPIRES
            valid_to = arguments.get("valid_to")
            if expiration_model == _KEY_MATERIAL_EXPIRES and not valid_to:
                raise localstack.validation(  # LocalStack's own check, before any change
                    "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES"
                )
            material = self._decrypt_wrapped_key_material(
                import_state, arguments["encrypted_key_material"]
            )
            material_id = _material_id(key, material)
            if requested_id is not None and requested_id != material_id:
                raise localstack.incorrect_key_material(
                    f"The key material in the request does not match key material ID "
                    f"{requested_id} of KMS key {arn}."
                )
            materials = _materials(key)
            known = next((m for m in materials if m.material_id == material_id), None)
            if _is_replica(key):
                if import_type == _NEW:
                    raise localstack.unsupported(
                        f"{arn} is a multi-Region replica key, which takes no new key material: "
                        "import new key material into its primary key, then the same material "
                        f"into the replica with ImportType {_EXISTING}."
                    )
                primary = _primary_of(stores, key)
                theirs = [] if primary is None else _materials(primary)
                if not any(m.material_id == material_id for m in theirs):
                    raise localstack.incorrect_key_material(
                        f"The key material in the request is not key material of the primary "
                        f"key of multi-Region replica key {arn}: a replica only takes the key "
                        "material imported into its primary key."
                    )
                _mirror(key, primary)
                known = next((m for m in materials if m.material_id == material_id), None)
                if known is None:  # pending rotation in the primary: pending here too
                    target = _Material(material_id, material, _PENDING_ROTATION)
                    materials.append(target)
                else:
                    target = known
                    target.material = material  # _settle loads it if it is current
            elif not materials:  # the first import, whichever the type: it becomes current
                original_import(*call.args, **call.kwargs)
                target = _Material(material_id, material, _CURRENT)
                materials.append(target)
            elif import_type == _NEW:
                if known is not None:
                    raise localstack.incorrect_key_material(
                        f"The key material in the request is already associated with KMS key "
                        f"{arn} (key material ID {material_id}); to reimport it, use "
                        f"ImportType {_EXISTING}."
                    )
                pending = _pending(materials)
                if pending is not None:
                    raise localstack.invalid_state(
                        f"KMS key {arn} already has key material {pending.material_id} in "
                        f"{pending.state} state: rotate to it with RotateKeyOnDemand or "
                        "delete it before importing other new key material."
                    )
                target = _Material(material_id, material, _PENDING_ROTATION)
                materials.append(target)
            elif known is None:
                raise localstack.incorrect_key_material(
                    f"The key material in the request is not associated with KMS key {arn}: a "
                    "key only accepts key material that was imported into it before; import "
                    f"new key material with ImportType {_NEW}."
                )
            else:
                target = known
                if target.state == _CURRENT:  # LocalStack (re)loads it into the crypto key
                    original_import(*call.args, **call.kwargs)
            target.import_state = _IMPORTED
            target.expiration_model = expiration_model
            target.valid_to = valid_to if expiration_model == _KEY_MATERIAL_EXPIRES else None
            if arguments.get("key_material_description") is not None:
                target.description = arguments["key_material_description"]
            _settle(stores, head(key))
            return {"KeyId": arn, "KeyMaterialId": material_id}

    @functools.wraps(original_delete)
    def delete_imported_key_material(
        self: Any, context: Any, key_id: str, *args: Any, **kwargs: Any
    ) -> Any:
        call = delete_signature.bind(self, context, key_id, *args, **kwargs)
        with _LOCK:
            key = importable_key(self, context, key_id)
            materials = _materials(key) if _may_rotate(key) else []
            if not materials:
                response = original_delete(*call.args, **call.kwargs)
                key.metadata.pop("ValidTo", None)
                return response
            arn = key.metadata["Arn"]
            family = head(key)
            if family is not key:  # a replica: first what its primary has associated since
                _mirror(key, family)
            requested_id = call.arguments.get("key_material_id")
            if requested_id is None:
                target = _in_state(materials, _CURRENT)
            else:
                target = next((m for m in materials if m.material_id == requested_id), None)
            if target is None:
                raise localstack.not_found(
                    f"Key material ID {requested_id} is not associated with KMS key {arn}."
                )
            if target.state in _PENDING_STATES:
                # Never part of the key: nothing awaits it. In a primary, the replicas' copies
                # go too (_settle); in a replica, only its own.
                materials.remove(target)
            else:
                if target.state == _CURRENT:  # LocalStack drops it from the crypto key
                    original_delete(*call.args, **call.kwargs)
                target.import_state = _PENDING_IMPORT
                target.expiration_model = None
                target.valid_to = None
            _settle(stores, family)
            return {"KeyId": arn, "KeyMaterialId": target.material_id}

    @functools.wraps(original_rotate)
    def rotate_key_on_demand(self: Any, context: Any, request: Any) -> Any:
        with _LOCK:
            account_id, region_name, key_id = self._parse_key_id(request["KeyId"], context)
            key = self._get_kms_key(account_id, region_name, key_id)
            if not _may_rotate(key):
                return original_rotate(self, context, request)
            arn = key.metadata["Arn"]
            if _is_replica(key):
                raise localstack.unsupported(
                    f"{arn} is a multi-Region replica key: rotate its primary key on demand, "
                    "which rotates the replicas with it."
                )
            _settle(stores, key)  # a replica added since the import has not imported it yet
            if key.metadata.get("KeyState") == "PendingImport":
                raise localstack.invalid_state(f"{arn} is pending import.")
            materials = _materials(key)
            current = _in_state(materials, _CURRENT)
            pending = _pending(materials)
            if current is None or pending is None or pending.import_state != _IMPORTED:
                raise localstack.unsupported(
                    f"{arn} has no imported key material in {_PENDING_ROTATION} state: import "
                    f"new key material with ImportType {_NEW} before rotating it on demand."
                )
            if pending.state == _PENDING_MULTI_REGION:
                raise localstack.unsupported(
                    f"Key material {pending.material_id} of multi-Region key {arn} is in "
                    f"{_PENDING_MULTI_REGION} state: import it into every replica key with "
                    f"ImportType {_EXISTING} before rotating the primary key on demand."
                )
            if sum(m.rotation_date is not None for m in materials) >= ON_DEMAND_ROTATION_LIMIT:
                raise localstack.limit_exceeded(  # LocalStack's message for its own keys
                    "The on-demand rotations limit has been reached for the given keyId. "
                    f"No more on-demand rotations can be performed for this key: {arn}"
                )
            current.state = _NON_CURRENT
            pending.state = _CURRENT
            pending.rotation_date = _now()
            key.crypto_key.load_key_material(pending.material)
            _settle(stores, key)  # the replicas rotate with the primary
            return {"KeyId": key_id}

    @functools.wraps(original_list_rotations)
    def list_key_rotations(self: Any, context: Any, key_id: str, *args: Any, **kwargs: Any) -> Any:
        call = list_signature.bind(self, context, key_id, *args, **kwargs)
        arguments = call.arguments
        with _LOCK:
            key = self._get_kms_key(
                context.account_id, context.region, key_id, any_key_state_allowed=True
            )
            if not _may_rotate(key):
                return original_list_rotations(*call.args, **call.kwargs)
            _settle(stores, head(key))
            include = arguments.get("include_key_material") or _ROTATIONS_ONLY
            if include not in (_ALL_KEY_MATERIAL, _ROTATIONS_ONLY):
                raise localstack.validation(
                    f"1 validation error detected: Value '{include}' at 'includeKeyMaterial' "
                    f"failed to satisfy constraint: Member must satisfy enum value set: "
                    f"[{_ALL_KEY_MATERIAL}, {_ROTATIONS_ONLY}]"
                )
            entries = [
                _rotations_entry(key, material)
                for material in _materials(key)
                if include == _ALL_KEY_MATERIAL or material.rotation_date is not None
            ]
        marker = arguments.get("marker")
        start = 0
        if marker is not None:
            if not str(marker).isdigit() or int(marker) > len(entries):
                raise localstack.invalid_marker(f"Invalid marker: {marker}")
            start = int(marker)
        end = start + int(arguments.get("limit") or _DEFAULT_LIST_LIMIT)
        response: dict[str, Any] = {"Rotations": entries[start:end], "Truncated": False}
        if end < len(entries):
            response.update(NextMarker=str(end), Truncated=True)
        return response

    @functools.wraps(original_replicate)
    def replicate_key(self: Any, context: Any, request: Any) -> Any:
        with _LOCK:
            response = original_replicate(self, context, request)
            primary = self._get_kms_key(
                context.account_id, context.region, request["KeyId"], any_key_state_allowed=True
            )
            if primary.metadata.get("Origin") != "EXTERNAL":
                return response
            region = request["ReplicaRegion"]
            replica = stores[context.account_id][region].keys[primary.metadata["KeyId"]]
            _empty_replica(localstack, replica)
            replica.tags = {}
            replica.add_tags(request.get("Tags"))
            if _may_rotate(replica):
                _settle(stores, primary)
            response["ReplicaKeyMetadata"] = replica.metadata
            return response

    provider.import_key_material = import_key_material
    provider.replicate_key = replicate_key
    provider.delete_imported_key_material = delete_imported_key_material
    provider.rotate_key_on_demand = rotate_key_on_demand
    provider.list_key_rotations = list_key_rotations


def _empty_replica(localstack: _LocalStack, replica: Any) -> None:
    """Undo what LocalStack's ReplicateKey copied of an EXTERNAL primary (``copy.deepcopy`` of
    the whole key object): its material, key state, expiry and the shim's record of materials.
    The replica gets a new crypto key as LocalStack gives any new EXTERNAL key (unusable while
    the key awaits import), no previous keys, and waits for its own import."""
    metadata = replica.metadata
    replica.crypto_key = localstack.crypto_key(metadata["KeySpec"])
    replica.previous_keys = []
    setattr(replica, _MATERIALS_ATTRIBUTE, [])
    setattr(replica, _ORIGINAL_ATTRIBUTE, None)
    metadata["KeyState"] = "PendingImport"
    metadata["Enabled"] = False
    for name in ("ValidTo", "ExpirationModel", "CurrentKeyMaterialId"):
        metadata.pop(name, None)


def _rotations_entry(key: Any, material: _Material) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "KeyId": key.metadata["KeyId"],
        "KeyMaterialId": material.material_id,
        "ImportState": material.import_state,
        "KeyMaterialState": material.state,
    }
    if material.description is not None:
        entry["KeyMaterialDescription"] = material.description
    if material.import_state == _IMPORTED and material.expiration_model is not None:
        entry["ExpirationModel"] = material.expiration_model
        if material.valid_to is not None:
            entry["ValidTo"] = material.valid_to
    if material.rotation_date is not None:
        entry["RotationDate"] = material.rotation_date
        entry["RotationType"] = "ON_DEMAND"
    return entry


def _listen_on_loopback_only() -> None:
    from twisted.internet import endpoints

    class LoopbackTCP4ServerEndpoint(endpoints.TCP4ServerEndpoint):  # type: ignore[misc]
        def __init__(self, reactor: Any, port: int, backlog: int = 50, interface: str = "") -> None:
            super().__init__(reactor, port, backlog, interface or "127.0.0.1")

    endpoints.TCP4ServerEndpoint = LoopbackTCP4ServerEndpoint


class _RecombinedRsa:
    """LocalStack's ``rsa`` module, whose ``generate_private_key`` recombines primes (above).

    With k keys generated for a size, any two of their 2k primes make a key: k(2k-1) keys. The
    product of two of them has exactly the size's bits, as OpenSSL draws every prime of a
    b-bit key above sqrt(2) * 2**(b/2 - 1); each key is checked for that all the same.
    """

    _PUBLIC_EXPONENT = 65537

    def __init__(self, rsa: Any) -> None:
        self._rsa = rsa
        self._primes: dict[int, list[int]] = {}
        self._unused: dict[int, list[tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rsa, name)

    def generate_private_key(self, public_exponent: int, key_size: int, *args: Any) -> Any:
        if public_exponent != self._PUBLIC_EXPONENT or args:
            return self._rsa.generate_private_key(public_exponent, key_size, *args)
        with self._lock:
            unused = self._unused.setdefault(key_size, [])
            if not unused:
                self._add_primes(key_size)
            p, q = unused.pop(0)
        return self._key(p, q, key_size)

    def _add_primes(self, key_size: int) -> None:
        numbers = self._rsa.generate_private_key(self._PUBLIC_EXPONENT, key_size).private_numbers()
        primes = self._primes.setdefault(key_size, [])
        new = (numbers.p, numbers.q)
        self._unused[key_size] += [new, *((mine, old) for mine in new for old in primes)]
        primes += new

    def _key(self, p: int, q: int, key_size: int) -> Any:
        rsa = self._rsa
        modulus = p * q
        if modulus.bit_length() != key_size:
            _fail(f"two primes of {key_size}-bit RSA keys made a {modulus.bit_length()}-bit key")
        private = pow(self._PUBLIC_EXPONENT, -1, (p - 1) * (q - 1))
        numbers = rsa.RSAPrivateNumbers(
            p=p,
            q=q,
            d=private,
            dmp1=rsa.rsa_crt_dmp1(private, p),
            dmq1=rsa.rsa_crt_dmq1(private, q),
            iqmp=rsa.rsa_crt_iqmp(p, q),
            public_numbers=rsa.RSAPublicNumbers(self._PUBLIC_EXPONENT, modulus),
        )
        # The primes are OpenSSL's own; checking them again would cost what the pool saves.
        return numbers.private_key(unsafe_skip_rsa_key_validation=True)


def _recombine_rsa_primes(models: Any) -> None:
    crypto_key = _attribute(_MODELS_MODULE, "KmsCryptoKey")
    if "rsa.generate_private_key(" not in inspect.getsource(crypto_key.__init__):
        _fail(f"{_MODELS_MODULE}.KmsCryptoKey no longer calls rsa.generate_private_key")
    models.rsa = _RecombinedRsa(models.rsa)


_PROVIDER = _provider_class()  # first: its complaints name what moved most precisely
_LOCALSTACK = _LocalStack()
_patch(_PROVIDER, _LOCALSTACK)
_recombine_rsa_primes(_LOCALSTACK.models)
# LocalStack's own rotation of keys whose material it generates reads this at call time.
_LOCALSTACK.models.ON_DEMAND_ROTATION_LIMIT = ON_DEMAND_ROTATION_LIMIT
_listen_on_loopback_only()
print(MARKER, file=sys.stderr, flush=True)
