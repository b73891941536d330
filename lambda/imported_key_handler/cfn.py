"""The CloudFormation custom resource: crhelper, configured safely, around the importer.

crhelper's defaults are dangerous for secrets (see log_config) and for time: its delete sleep
is two minutes, its response upload never gives up, and its timeout answer leaves 0.5 s.
"""

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError
from crhelper import CfnResource

from . import contract, deadline, log_config
from .audit import audited
from .binding import (
    ReplacedKey,
    declared_request,
    key_binding_tags,
    record_valid_to,
    require_declared,
    require_in_stack,
    require_removal,
)
from .errors import ImportFailure
from .importer import ImportResult, describe_key, import_from_secret
from .renewal import FleetClients, reindex
from .request import ImportRequest
from .response import WORST_CASE_S, send_response
from .revocation import (
    KEPT,
    KEY_GONE,
    describe_if_exists,
    revocation_requested,
    revoke_material,
)

if TYPE_CHECKING:
    from mypy_boto3_kms.type_defs import KeyMetadataTypeDef

logger = logging.getLogger(__name__)

TIMEOUT_REASON = (
    "The import ran out of time (KMS or Secrets Manager did not answer in time). The handler "
    "made no further change after this answer; importing the same material again is safe: "
    "retry the deployment."
)


class _BoundedCfnResource(CfnResource):
    _answer_lock = threading.Lock()
    _answered = False

    """crhelper with a bounded response upload and a timeout answer sent in time.

    Overrides crhelper 2.0.12's private ``_send``/``_set_timeout``/``_timeout``, which its
    stubs do not declare; crhelper is pinned exactly, and the tests exercise all three.
    """

    def _send(self, status: str | None = None, reason: str = "", send_response: Any = None) -> None:
        # CloudFormation takes the first answer only; a second would contradict it.
        with self._answer_lock:
            if self._answered:
                logger.warning("Not sending a second answer to CloudFormation")
                return
            self._answered = True
        cast(Any, super())._send(status, reason, send_response=_send_ignoring_verify)

    def _crhelper_init(self, event: Any, context: Any) -> bool:
        self._answered = False
        return bool(cast(Any, super())._crhelper_init(event, context))

    def _set_timeout(self) -> None:
        remaining_s = cast(Any, self)._context.get_remaining_time_in_millis() / 1000.0
        timer = threading.Timer(max(remaining_s - WORST_CASE_S, 0.0), self._timeout)
        cast(Any, self)._timer = timer
        timer.daemon = True
        timer.start()

    def _timeout(self) -> None:
        logger.error("Execution is about to time out; answering FAILED")
        deadline.mark_passed()
        self._send("FAILED", TIMEOUT_REASON)


def _send_ignoring_verify(url: str, body: dict[str, Any], _ssl_verify: Any) -> None:
    send_response(url, body)


def data_for(result: ImportResult) -> dict[str, str]:
    """Response Data: references and dates only."""
    return {
        contract.ATTR_KEY_ARN: result.key_arn,
        contract.ATTR_KEY_ID: result.key_id,
        contract.ATTR_VALID_TO: result.valid_to.isoformat() if result.valid_to else "",
        contract.ATTR_KEY_MATERIAL_ID: result.key_material_id or "",
        contract.ATTR_VERIFIED: result.verified or "",
    }


def run_import(
    properties: Mapping[str, Any], action: str, resource: tuple[str, str]
) -> ImportResult:
    """Import for a Create or Update, turning every failure into a clear ImportFailure.

    Only what the stack declared for the key (binding, confirmed by CloudFormation), and never
    into a key whose material was revoked on purpose; the ValidTo imported is recorded on the
    key and in the due index. ``resource``: the event's stack id and logical id, where an
    adopted key's binding is recorded.
    """
    request = ImportRequest.from_properties(properties)
    with audited(action, request.key_id) as record:
        fleet = FleetClients.build()
        try:
            tags, adopted = key_binding_tags(
                fleet.kms, fleet.cloudformation, request.key_id, resource
            )
            binding = require_declared(fleet.kms, properties, tags, adopted=adopted)
            require_in_stack(fleet.cloudformation, binding)
        except ReplacedKey:
            kept = _kept_by_rollback(describe_key(fleet.kms, request.key_id), request.key_id)
            if kept is None:
                raise
            record.succeeded("UNCHANGED", kept.valid_to)
            return kept
        now = datetime.now(UTC)
        metadata = describe_key(fleet.kms, request.key_id)
        binding.refuse_if_revoked(metadata, now)
        result = import_from_secret(fleet.kms, fleet.secrets, request, now=now)
        record_valid_to(fleet.kms, request.key_id, result.valid_to, binding)
        _, window = declared_request(request.key_id, binding.tags)
        # A multi-Region primary's rotation waiting for its replicas: the sweep finishes it.
        due_now = now if result.pending_material_id else None
        reindex(fleet, binding, window, result.valid_to, [], due_now=due_now)
        record.succeeded(valid_to=result.valid_to)
        return result


def _kept_by_rollback(metadata: "KeyMetadataTypeDef", key_id: str) -> ImportResult | None:
    """The answer for a key CloudFormation does not confirm but that needs nothing: rolling back
    a replacement sends the old key back before the key resource itself is rolled back, so for
    a while the stack names the new key. An Enabled key keeps its material; nothing is read or
    imported, so the answer gives a forged event nothing either. (Assumption: the order of a
    rollback, from CloudFormation's documented dependency order; the real-AWS run checks it.)"""
    if metadata.get("KeyState") != "Enabled":
        return None
    return ImportResult(
        key_id=key_id,
        key_arn=str(metadata.get("Arn", "")),
        valid_to=metadata.get("ValidTo"),
        key_material_id=metadata.get("CurrentKeyMaterialId"),
    )


def _delete(event: Mapping[str, Any], properties: Mapping[str, Any], key_id: str) -> str:
    """What a Delete does to the key: revoke when declared, and take it out of the due index
    once CloudFormation confirms it is removing the resource."""
    if revocation_requested(properties):
        return _leave(event, properties, key_id, revoke=True)
    try:
        return _leave(event, properties, key_id, revoke=False)
    except (ImportFailure, BotoCoreError) as failure:
        # Without revocation a Delete changes nothing in KMS, and must not fail the stack's
        # removal: an unconfirmed one (forged, a key bound by an older deployment, AWS out of
        # reach) leaves the key indexed rather than failing. A key that left its stack then
        # leaves the index at its next sweep.
        reason = failure.reason if isinstance(failure, ImportFailure) else type(failure).__name__
        logger.warning("Delete left key %s indexed: %s", key_id, reason)
        return KEPT


def _leave(
    event: Mapping[str, Any], properties: Mapping[str, Any], key_id: str, *, revoke: bool
) -> str:
    fleet = FleetClients.build()
    metadata = describe_if_exists(fleet.kms, key_id)
    if metadata is None:
        return KEY_GONE
    tags, adopted = key_binding_tags(fleet.kms, fleet.cloudformation, key_id, _resource(event))
    binding = require_declared(fleet.kms, properties, tags, adopted=adopted)
    require_removal(fleet.cloudformation, event, binding)
    outcome = revoke_material(fleet.kms, key_id, metadata) if revoke else KEPT
    _, window = declared_request(key_id, binding.tags)
    reindex(fleet, binding, window, None, [])
    return outcome


def _resource(event: Mapping[str, Any]) -> tuple[str, str]:
    return str(event.get("StackId") or ""), str(event.get("LogicalResourceId") or "")


def build_helper() -> CfnResource:
    helper = _BoundedCfnResource(
        json_logging=False,
        log_level=log_config.handler_log_level(),
        boto_level="WARNING",
        sleep_on_delete=0,
    )

    @helper.create
    @helper.update
    def create_or_update(event: dict[str, Any], _context: Any) -> str:
        result = run_import(
            event.get("ResourceProperties") or {}, event["RequestType"], _resource(event)
        )
        helper.Data.update(data_for(result))
        return result.key_id

    @helper.delete
    def delete(event: dict[str, Any], _context: Any) -> None:
        # Unless revocation was asked for, the material stays: the key's own removal policy
        # decides what happens to the key. A Delete after a failed Create succeeds too: that
        # resource never imported into the key (its physical id is not the key's id).
        properties = event.get("ResourceProperties") or {}
        if not isinstance(properties, Mapping):
            raise ImportFailure(
                "ResourceProperties is not an object; the custom resource must be created by "
                "the ImportedKey construct."
            )
        key_id = str(properties.get(contract.PROP_KEY_ID, ""))
        with audited("Delete", key_id) as record:
            if not key_id or event.get("PhysicalResourceId") != key_id:
                record.succeeded(KEPT)
                return
            record.succeeded(_delete(event, properties, key_id))

    log_config.quiet_noisy_loggers()
    return helper
