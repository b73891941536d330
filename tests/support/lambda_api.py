"""A stand-in for the Lambda API on 127.0.0.1: ListFunctions, synchronous Invoke of functions
that run the real handler in this process, and the two reads ``imported-keys doctor`` makes.

LocalStack runs Lambda functions in Docker, which this machine does not have. The command line
only lists the handler's functions, invokes one synchronously and reads their state, so this
serves exactly those operations, as botocore's Lambda client sends them (rest-json; the
routes, query parameters and headers come import boto3
from botocore's own service model, so a request
botocore would not send is refused rather than guessed at):

- ``ListFunctions``: ``GET /2015-03-31/functions`` with ``Marker`` and ``MaxItems``, at most
  ``page_size`` (Lambda: 50) functions a page, and ``NextMarker`` while more are left;
- ``Invoke``: ``POST /2015-03-31/functions/{FunctionName}/invocations``, RequestResponse only.
  The answer is 200 with the function's return value as JSON; when the function raises, 200
  with ``X-Amz-Function-Error: Unhandled`` and ``{"errorMessage", "errorType", ...}``, as the
  Python runtime reports it;
- ``GetFunctionConfiguration``: ``GET /2015-03-31/functions/{FunctionName}/configuration``,
  the function's configuration with the fields Lambda leaves out of ListFunctions (``State``,
  ``LastUpdateStatus`` and their reasons: tests set them on the ``Function``) and its
  ``LoggingConfig``;
- ``GetFunctionEventInvokeConfig``:
  ``GET /2019-09-25/functions/{FunctionName}/event-invoke-config``, the asynchronous
  invocation settings of a function registered with an ``on_failure`` destination (as the
  construct configures both functions), else ResourceNotFoundException.

A function that is not registered (or was ``remove``d) is ResourceNotFoundException to all of
them. ListFunctions shows each function's ``State`` as ``Active`` whatever it is set to, as
before; Lambda itself leaves ``State`` out of ListFunctions.

A registered function runs ``imported_key_handler.entry.handler`` (or a test's own callable)
in the server's request thread, one invocation at a time, in the environment Lambda would
give it: the function's variables, Lambda's reserved ones, no endpoint override and none of
the process's handler variables that the function does not declare. The environment is put
back afterwards. Its clients go to ``kms_endpoint`` (LocalStack) through
``clients.endpoint_for_tests``, as the e2e fixtures play Lambda. A function is not stopped at
its timeout.

Requests are not authenticated, but each must carry a SigV4 signature for the ``lambda``
service: a client for another service, or an unsigned one, is refused.
"""

import importlib.metadata
import json
import os
import re
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import botocore.session
from botocore.validate import ParamValidator

from imported_key_handler import clients, contract
from support.lambda_context import FakeLambdaContext

HOST = "127.0.0.1"
REGION = "us-east-1"
ACCOUNT_ID = "000000000000"
# Lambda's limit for a synchronous request's payload (RequestTooLargeException above it).
MAX_PAYLOAD = 6 * 1024 * 1024
LAMBDA_PAGE_SIZE = 50
_SOCKET_TIMEOUT = 30.0
_LAMBDA_ENV_NAMES = tuple(
    value for name, value in vars(contract).items() if name.startswith("ENV_")
)

Handler = Callable[[Any, Any], Any]


def _model() -> Any:
    return botocore.session.get_session().get_service_model("lambda")


def _entry_handler(event: Any, context: Any) -> Any:
    from imported_key_handler import entry

    return entry.handler(event, context)


@dataclass
class Function:
    """A function as ListFunctions shows it, and what runs when it is invoked."""

    name: str
    timeout_s: int
    variables: dict[str, str]
    handler: Handler = _entry_handler
    role: str = f"arn:aws:iam::{ACCOUNT_ID}:role/imported-key-handler"
    region: str = REGION
    invocations: list[Any] = field(default_factory=list)
    # What GetFunctionConfiguration reports (Pending, Active, Inactive, Failed; InProgress,
    # Successful, Failed), with the reasons Lambda gives for a state that is not the usual one.
    state: str = "Active"
    state_reason: str | None = None
    state_reason_code: str | None = None
    last_update_status: str | None = "Successful"
    last_update_status_reason: str | None = None
    last_update_status_reason_code: str | None = None
    # The asynchronous invocation's on-failure destination (an SQS queue's ARN, as the construct
    # configures it); None: the function has no event invoke configuration.
    on_failure: str | None = None
    log_group: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.name}"

    def configuration(self) -> dict[str, Any]:
        """Its FunctionConfiguration (a subset of Lambda's fields, every one in the model)."""
        return {
            "FunctionName": self.name,
            "FunctionArn": self.arn,
            "Runtime": "python3.12",
            "Role": self.role,
            "Handler": contract.HANDLER_ENTRY,
            "CodeSize": 1024,
            "Description": "stand-in",
            "Timeout": self.timeout_s,
            "MemorySize": 256,
            "LastModified": "2026-01-01T00:00:00.000+0000",
            "CodeSha256": "0" * 43 + "=",
            "Version": "$LATEST",
            "Environment": {"Variables": dict(self.variables)},
            "PackageType": "Zip",
            "Architectures": ["arm64"],
            "State": "Active",
        }

    def full_configuration(self) -> dict[str, Any]:
        """What GetFunctionConfiguration answers: the listing's fields, the state the function
        is set to, and its logging configuration."""
        configuration = self.configuration()
        optional = {
            "StateReason": self.state_reason,
            "StateReasonCode": self.state_reason_code,
            "LastUpdateStatus": self.last_update_status,
            "LastUpdateStatusReason": self.last_update_status_reason,
            "LastUpdateStatusReasonCode": self.last_update_status_reason_code,
        }
        configuration.update({name: value for name, value in optional.items() if value})
        configuration["State"] = self.state
        configuration["LoggingConfig"] = {
            "LogFormat": "JSON",
            "ApplicationLogLevel": "INFO",
            "SystemLogLevel": "WARN",
            "LogGroup": self.log_group or f"/aws/lambda/{self.name}",
        }
        return configuration

    def event_invoke_config(self) -> dict[str, Any] | None:
        """What GetFunctionEventInvokeConfig answers (``LastModified`` as a datetime), or None
        when the function has none: the construct's retries and event age, and the queue."""
        if self.on_failure is None:
            return None
        return {
            "LastModified": datetime(2026, 1, 1, tzinfo=UTC),
            "FunctionArn": f"{self.arn}:$LATEST",
            "MaximumRetryAttempts": 2,
            "MaximumEventAgeInSeconds": 6 * 3600,
            "DestinationConfig": {"OnSuccess": {}, "OnFailure": {"Destination": self.on_failure}},
        }


class _Refusal(Exception):
    """An API error: HTTP status, error code and message, as Lambda sends them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class LambdaApi:
    """The Lambda API at ``endpoint`` (``http://127.0.0.1:<port>``) for the functions
    registered with ``register``."""

    def __init__(
        self,
        kms_endpoint: str | None,
        *,
        region: str = REGION,
        page_size: int = LAMBDA_PAGE_SIZE,
    ) -> None:
        self.kms_endpoint = kms_endpoint
        self.region = region
        self.page_size = page_size
        self.functions: dict[str, Function] = {}
        # Every request's operation (ListFunctions, Invoke) and anything refused, for tests.
        self.requests: list[str] = []
        self.refusals: list[str] = []
        # Connections that broke (a client that hung up before its answer).
        self.connection_errors: list[str] = []
        self._lock = threading.Lock()  # the functions and the lists above
        self._running = threading.Lock()  # one invocation at a time: they share os.environ
        model = _model()
        self._list = model.operation_model("ListFunctions")
        self._invoke = model.operation_model("Invoke")
        self._get_configuration = model.operation_model("GetFunctionConfiguration")
        self._get_invoke_config = model.operation_model("GetFunctionEventInvokeConfig")
        self._validator = ParamValidator()
        self._configuration_shape = model.shape_for("FunctionConfiguration")
        self._reads = {
            operation.name: (operation, _path_of(operation))
            for operation in (self._get_configuration, self._get_invoke_config)
        }
        invoke_uri = re.escape(self._invoke.http["requestUri"]).replace(
            re.escape("{FunctionName}"), "(?P<name>[^/?]+)"
        )
        self._invoke_path = re.compile(f"^{invoke_uri}$")
        self._server = _Server(self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"lambda-api-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def client(self, config: Any = None) -> Any:
        """An operator's Lambda client for this stand-in (any credentials: it checks the
        signature's service, not the key)."""
        return boto3.client(
            "lambda",
            region_name=self.region,
            endpoint_url=self.endpoint,
            aws_access_key_id="operator",
            aws_secret_access_key="operator",
            config=config,
        )

    def register(
        self,
        name: str,
        *,
        timeout_s: int,
        variables: Mapping[str, str],
        handler: Handler = _entry_handler,
        role: str | None = None,
        on_failure: str | None = None,
        log_group: str | None = None,
    ) -> Function:
        """Add a function (its configuration is checked against botocore's model).
        ``on_failure``: the destination ARN of its event invoke configuration (else it has
        none); ``log_group``: its LoggingConfig's (else ``/aws/lambda/<name>``)."""
        function = Function(
            name,
            timeout_s,
            dict(variables),
            handler,
            region=self.region,
            on_failure=on_failure,
            log_group=log_group,
        )
        if role is not None:
            function.role = role
        self._validate(function)
        with self._lock:
            self.functions[name] = function
        return function

    def remove(self, name: str) -> Function:
        """Take a registered function away (as if it were deleted); it is returned."""
        with self._lock:
            return self.functions.pop(name)

    def _validate(self, function: Function) -> None:
        checks = [(function.full_configuration(), self._configuration_shape)]
        invoke_config = function.event_invoke_config()
        if invoke_config is not None:
            checks.append((invoke_config, self._get_invoke_config.output_shape))
        for value, shape in checks:
            report = self._validator.validate(value, shape)
            if report.has_errors():
                raise AssertionError(report.generate_report())

    # --- ListFunctions

    def _list_functions(self, query: Mapping[str, str]) -> dict[str, Any]:
        try:
            limit = min(int(query.get("MaxItems", self.page_size)), self.page_size)
        except ValueError:
            raise _Refusal(400, "InvalidParameterValueException", "MaxItems is no number") from None
        if limit < 1:
            raise _Refusal(400, "InvalidParameterValueException", "MaxItems must be at least 1")
        with self._lock:
            names = sorted(self.functions)
            marker = query.get("Marker")
            start = 0
            if marker is not None:
                # Opaque to the client, as Lambda's are: the name the next page starts at.
                if not marker.startswith("m:") or marker[2:] not in names:
                    raise _Refusal(400, "InvalidParameterValueException", "Invalid marker")
                start = names.index(marker[2:])
            page = names[start : start + limit]
            answer: dict[str, Any] = {
                "Functions": [self.functions[name].configuration() for name in page]
            }
            if start + limit < len(names):
                answer["NextMarker"] = f"m:{names[start + limit]}"
        return answer

    # --- Invoke

    def _function(self, quoted: str, qualifier: str | None) -> Function:
        identifier = unquote(quoted)
        # A name, a partial ARN (123456789012:function:name) or an ARN, with maybe a qualifier.
        name = identifier.split("function:", 1)[1] if "function:" in identifier else identifier
        name, _, suffix = name.partition(":")
        for version in (suffix or None, qualifier):
            if version not in (None, "$LATEST"):
                raise _Refusal(
                    404,
                    "ResourceNotFoundException",
                    f"Function not found: {identifier}:{version} (the stand-in has $LATEST only)",
                )
        with self._lock:
            function = self.functions.get(name)
        if function is None:
            raise _Refusal(
                404,
                "ResourceNotFoundException",
                f"Function not found: arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}",
            )
        return function

    def _run(self, function: Function, body: bytes) -> tuple[bytes, str | None]:
        """Run the function on the payload: its answer, and the X-Amz-Function-Error value."""
        try:
            event = json.loads(body) if body else {}
        except ValueError:
            raise _Refusal(
                400, "InvalidRequestContentException", "Could not parse request body into json"
            ) from None
        with self._lock:
            function.invocations.append(event)
        with self._running, self._lambda_environment(function):
            context = FakeLambdaContext(function.timeout_s, function_name=function.name)
            try:
                with clients.endpoint_for_tests(self.kms_endpoint):
                    result = function.handler(event, context)
            except Exception as error:
                return _error_payload(error, context.aws_request_id), "Unhandled"
        if isinstance(result, bytes):
            return result, None  # a test's function answering something that is no JSON
        try:
            return json.dumps(result).encode(), None
        except (TypeError, ValueError) as error:
            # What the Python runtime reports for an answer it cannot serialize.
            return (
                json.dumps(
                    {
                        "errorMessage": f"Unable to marshal response: {error}",
                        "errorType": "Runtime.MarshalError",
                        "requestId": context.aws_request_id,
                        "stackTrace": [],
                    }
                ).encode(),
                "Unhandled",
            )

    @contextmanager
    def _lambda_environment(self, function: Function) -> Iterator[None]:
        changes: dict[str, str | None] = {
            name: None
            for name in os.environ
            if name.startswith("AWS_ENDPOINT_URL") or name in _LAMBDA_ENV_NAMES
        }
        changes.update(
            {
                "AWS_CONFIG_FILE": None,
                "AWS_PROFILE": None,
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
                "AWS_REGION": function.region,
                "AWS_DEFAULT_REGION": function.region,
                # The function's role's credentials; the emulator takes any.
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_SESSION_TOKEN": "test",
                **function.variables,
            }
        )
        saved = {name: os.environ.get(name) for name in changes}
        try:
            _apply(changes)
            yield
        finally:
            _apply(saved)

    # --- HTTP

    def _answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Any:
        """(status, headers, body) for one request."""
        url = urlsplit(target)
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        path = url.path
        authorization = headers.get("authorization", "")
        if "/lambda/aws4_request" not in authorization:
            raise _Refusal(403, "MissingAuthenticationTokenException", "No SigV4 for lambda")
        if method == self._list.http["method"] and path.rstrip("/") == (
            self._list.http["requestUri"].rstrip("/")
        ):
            self._check_query("ListFunctions", self._list, query)
            self._record("ListFunctions")
            answer = self._list_functions(query)
            return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()
        match = self._invoke_path.match(path)
        if method == self._invoke.http["method"] and match:
            self._check_query("Invoke", self._invoke, query)
            self._record("Invoke")
            invocation_type = headers.get("x-amz-invocation-type", "RequestResponse")
            if invocation_type != "RequestResponse" or headers.get("x-amz-log-type", "None") != (
                "None"
            ):
                raise _Refusal(
                    400,
                    "InvalidParameterValueException",
                    f"the stand-in plays RequestResponse without logs, not {invocation_type}",
                )
            if len(body) > MAX_PAYLOAD:
                raise _Refusal(413, "RequestTooLargeException", "Request must be smaller")
            function = self._function(match.group("name"), query.get("Qualifier"))
            payload, function_error = self._run(function, body)
            answer_headers = {
                "Content-Type": "application/json",
                "X-Amz-Executed-Version": "$LATEST",
            }
            if function_error:
                answer_headers["X-Amz-Function-Error"] = function_error
            return 200, answer_headers, payload
        for name, (operation, pattern) in self._reads.items():
            match = pattern.match(path)
            if method != operation.http["method"] or not match:
                continue
            self._check_query(name, operation, query)
            self._record(name)
            function = self._function(match.group("name"), query.get("Qualifier"))
            self._validate(function)  # a test may have set any state: still Lambda's shape
            answer = self._read(name, function)
            return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()
        raise _Refusal(404, "UnknownOperationException", f"no operation at {method} {path}")

    def _read(self, operation: str, function: Function) -> dict[str, Any]:
        if operation == "GetFunctionConfiguration":
            return function.full_configuration()
        invoke_config = function.event_invoke_config()
        if invoke_config is None:
            raise _Refusal(
                404,
                "ResourceNotFoundException",
                f"The function {function.arn} doesn't have an EventInvokeConfig",
            )
        # rest-json timestamps: seconds since the epoch.
        invoke_config["LastModified"] = invoke_config["LastModified"].timestamp()
        return invoke_config

    def _check_query(self, operation: str, model: Any, query: Mapping[str, str]) -> None:
        allowed = {
            member.serialization.get("name", name)
            for name, member in model.input_shape.members.items()
            if member.serialization.get("location") == "querystring"
        }
        unknown = sorted(set(query) - allowed)
        if unknown:
            raise _Refusal(400, "InvalidParameterValueException", f"{operation} takes no {unknown}")

    def _record(self, operation: str) -> None:
        with self._lock:
            self.requests.append(operation)

    def _failed(self, description: str) -> None:
        with self._lock:
            self.connection_errors.append(description)

    def _refused(self, description: str) -> None:
        with self._lock:
            self.refusals.append(description)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _path_of(operation: Any) -> re.Pattern[str]:
    """The request path of an operation on one function, ``{FunctionName}`` as ``name``."""
    uri = re.escape(operation.http["requestUri"]).replace(
        re.escape("{FunctionName}"), "(?P<name>[^/?]+)"
    )
    return re.compile(f"^{uri}$")


def _apply(values: Mapping[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _error_payload(error: Exception, request_id: str) -> bytes:
    """What the Python runtime sends for an exception the handler did not catch."""
    return json.dumps(
        {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "requestId": request_id,
            "stackTrace": traceback.format_tb(error.__traceback__),
        }
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"  # botocore keeps its connections open
    timeout = _SOCKET_TIMEOUT

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD + 1:
            self.send_error(413, "body too large")
            self.close_connection = True
            return
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        api = self.server.api
        try:
            status, answer_headers, payload = api._answer(self.command, self.path, headers, body)
        except Exception as error:
            refusal = (
                error
                if isinstance(error, _Refusal)
                else _Refusal(500, "ServiceException", f"stand-in failed: {error!r}")
            )
            api._refused(f"{self.command} {self.path}: {refusal.code}: {refusal.message}")
            status = refusal.status
            answer_headers = {
                "Content-Type": "application/json",
                "x-amzn-ErrorType": refusal.code,
            }
            payload = json.dumps({"Type": "User", "message": refusal.message}).encode()
        self.send_response(status)
        answer_headers["x-amzn-RequestId"] = str(uuid.uuid4())
        for name, value in answer_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: pytest shows stderr of failing tests, and access logs are just noise there.
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: LambdaApi) -> None:
        self.api = api
        super().__init__((HOST, 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its read timeout) before the answer shows up here: keep it
        # for tests to look at instead of printing a traceback.
        error = sys.exception()
        self.api._failed(f"{client_address}: {type(error).__name__}: {error}")


def handler_environment(role_id: str, stack_id: str, bucket: str) -> dict[str, str]:
    """The environment the construct gives both of a stack's functions."""
    return {
        contract.ENV_HANDLER_ROLE_ID: role_id,
        contract.ENV_HANDLER_STACK_ID: stack_id,
        contract.ENV_REGISTRY_BUCKET: bucket,
        contract.ENV_IMPORTS_PER_SECOND: "1",
        contract.ENV_FLEET_NAME: f"{stack_id.split('/')[1]}/ImportedKeyHandler",
        contract.ENV_LIBRARY_VERSION: importlib.metadata.version(contract.LIBRARY_DISTRIBUTION),
    }
