"""Lambda entry point: route each event to the code that owns it.

Only CloudFormation custom resource requests go to crhelper: crhelper answers every event it
is given with a PUT to its ResponseURL, and for any other event that URL does not exist. The
schedule's sweep event goes to the sweep, KMS's expiration event for one of this handler's
keys and a renewal event for one key to the renewal, an operator's verify event to the proof;
anything else is logged (by its keys only) and ignored.
"""

import logging
from collections.abc import Mapping
from typing import Any

from . import clients, contract, deadline, log_config
from .proof import is_verify_event, run_verify, verify_key_id
from .renewal import expired_key_id, is_renewal_event, renewal_key_id, run_renewal, serves
from .sweep import is_sweep_event, run_sweep

logger = logging.getLogger(__name__)

_CFN_REQUEST_TYPES = ("Create", "Update", "Delete")
_REQUIRED_FIELDS = ("StackId", "RequestId", "LogicalResourceId")
_helper: Any = None


def is_cloudformation_request(event: object) -> bool:
    return (
        isinstance(event, Mapping)
        and event.get("RequestType") in _CFN_REQUEST_TYPES
        and isinstance(event.get("ResponseURL"), str)
        and str(event["ResponseURL"]).startswith("https://")
        and all(isinstance(event.get(k), str) for k in _REQUIRED_FIELDS)
    )


def handler(event: Any, context: Any) -> Any:
    global _helper
    deadline.start()  # a new invocation: its own answer, its own deadline
    log_config.quiet_noisy_loggers()
    if is_cloudformation_request(event):
        # crhelper's polling keys never come from CloudFormation; they would make crhelper
        # skip the import and answer from the event itself.
        event = {k: v for k, v in event.items() if not str(k).startswith("CrHelper")}
        if _helper is None:
            # Built on first use: crhelper creates boto3 clients when constructed.
            from .cfn import build_helper

            _helper = build_helper()
        _helper(event, context)
        return None
    if is_sweep_event(event):
        return run_sweep(context)
    if is_renewal_event(event):
        return run_renewal(*renewal_key_id(event))
    if is_verify_event(event):
        return run_verify(verify_key_id(event))
    expired = expired_key_id(event) if isinstance(event, Mapping) else None
    if expired is not None:
        if not serves(clients.kms_client(), expired):
            logger.info("Ignored the expiration of a key this handler does not serve")
            return {"Status": "IGNORED", "Reason": "not a key of this handler"}
        return run_renewal(expired, contract.TRIGGER_MATERIAL_EXPIRED)
    keys = sorted(str(k) for k in event)[:10] if isinstance(event, Mapping) else []
    logger.warning("Ignored an event that is not a CloudFormation request (keys: %s)", keys)
    return {"Status": "IGNORED", "Reason": "not a CloudFormation custom resource request"}
