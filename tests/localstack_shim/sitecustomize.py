"""Fidelity shim for LocalStack 4.10's KMS ImportKeyMaterial; loaded into LocalStack only.

Why: LocalStack 4.10 accepts ``ValidTo`` on ImportKeyMaterial but never stores it (see
``localstack/services/kms/provider.py``, ``import_key_material``, "TODO actually set validTo"),
so DescribeKey never reports it, and the call answers ``{}``. The handler under test confirms an
import the way the KMS API reference documents it: ``ImportKeyMaterial`` returns ``KeyId`` (the
key ARN) and ``DescribeKey`` then reports ``KeyMetadata.ValidTo``, which is present only for an
``EXTERNAL`` key whose ``ExpirationModel`` is ``KEY_MATERIAL_EXPIRES``. Without this shim every
end-to-end run would look like a failed confirmation.

What it adds, and nothing more (all of it documented real-KMS behaviour):

* after a successful ImportKeyMaterial: ``ValidTo`` is stored in the key metadata when the
  expiration model is ``KEY_MATERIAL_EXPIRES`` and removed when it is
  ``KEY_MATERIAL_DOES_NOT_EXPIRE``; the response carries ``KeyId`` (the key ARN);
* after DeleteImportedKeyMaterial: ``ValidTo`` is removed, as LocalStack already removes
  ``ExpirationModel`` there; otherwise the shim itself would leave a stale date on a key that
  is back in ``PendingImport``.

It does not make material expire and adds no validation: those stay LocalStack gaps.

One more thing, for the workplace rather than for KMS: LocalStack 4.10 ignores the host part of
``GATEWAY_LISTEN`` for IPv4 (``runtime/server/twisted.py``, "TODO: interface = host?") and
listens on every interface. The shim makes IPv4 server endpoints default to 127.0.0.1.

It is a ``sitecustomize`` so that it runs before LocalStack loads its services; put this
directory on ``PYTHONPATH`` of the LocalStack process only. If the code it patches has moved
(a LocalStack upgrade), it stops the interpreter with ``SystemExit``: ``site`` swallows any
other exception from ``sitecustomize`` and LocalStack would then start unpatched and quietly.
"""

import functools
import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any, NoReturn

_PROVIDER_MODULE = "localstack.services.kms.provider"
_EXPECTED_PARAMETERS: dict[str, tuple[str, ...]] = {
    "import_key_material": ("self", "context", "key_id", "valid_to"),
    "delete_imported_key_material": ("self", "context", "key_id"),
    "_get_kms_key": ("account_id", "region_name", "any_type_of_key_id", "any_key_state_allowed"),
}
# Printed into LocalStack's log so the test harness can tell the shim is really active.
MARKER = "imported-key-cdk localstack shim: KMS ImportKeyMaterial patched"

_KEY_MATERIAL_EXPIRES = "KEY_MATERIAL_EXPIRES"


def _fail(reason: str) -> NoReturn:
    raise SystemExit(
        f"imported-key-cdk localstack shim ({__file__}): {reason}. The LocalStack KMS provider "
        "no longer looks like the one this shim was written for (4.10); check whether the new "
        "version stores ValidTo itself and update or remove the shim."
    )


def _provider_class() -> type[Any]:
    try:
        module = importlib.import_module(_PROVIDER_MODULE)
    except ImportError as error:
        _fail(f"cannot import {_PROVIDER_MODULE}: {error}")
    provider: Any = getattr(module, "KmsProvider", None)
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
    return provider


def _find_key(provider: Any, context: Any, key_id: str) -> Any:
    return provider._get_kms_key(
        context.account_id, context.region, key_id, any_key_state_allowed=True
    )


def _patch(provider: type[Any]) -> None:
    original_import: Callable[..., Any] = provider.import_key_material
    original_delete: Callable[..., Any] = provider.delete_imported_key_material
    import_signature = inspect.signature(original_import)

    # LocalStack dispatches by method name with keyword arguments, so the wrappers keep the name
    # (functools.wraps) and take whatever the original takes.
    @functools.wraps(original_import)
    def import_key_material(self: Any, context: Any, key_id: str, *args: Any, **kwargs: Any) -> Any:
        response = original_import(self, context, key_id, *args, **kwargs)
        metadata = _find_key(self, context, key_id).metadata
        call = import_signature.bind(self, context, key_id, *args, **kwargs)
        valid_to = call.arguments.get("valid_to")
        if metadata.get("ExpirationModel") == _KEY_MATERIAL_EXPIRES and valid_to is not None:
            metadata["ValidTo"] = valid_to
        else:
            metadata.pop("ValidTo", None)
        response = dict(response or {})
        response["KeyId"] = metadata["Arn"]
        return response

    @functools.wraps(original_delete)
    def delete_imported_key_material(
        self: Any, context: Any, key_id: str, *args: Any, **kwargs: Any
    ) -> Any:
        response = original_delete(self, context, key_id, *args, **kwargs)
        _find_key(self, context, key_id).metadata.pop("ValidTo", None)
        return response

    provider.import_key_material = import_key_material
    provider.delete_imported_key_material = delete_imported_key_material


def _listen_on_loopback_only() -> None:
    from twisted.internet import endpoints

    class LoopbackTCP4ServerEndpoint(endpoints.TCP4ServerEndpoint):  # type: ignore[misc]
        def __init__(self, reactor: Any, port: int, backlog: int = 50, interface: str = "") -> None:
            super().__init__(reactor, port, backlog, interface or "127.0.0.1")

    endpoints.TCP4ServerEndpoint = LoopbackTCP4ServerEndpoint


_patch(_provider_class())
_listen_on_loopback_only()
print(MARKER, file=sys.stderr, flush=True)
