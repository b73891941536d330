"""A local HTTPS endpoint standing in for CloudFormation's pre-signed custom-resource ResponseURL.

crhelper always answers CloudFormation with an HTTPS ``PUT`` (whatever the URL's scheme), so
the stand-in must speak real TLS. It makes a throw-away CA and a server certificate for
``127.0.0.1`` and ``localhost``; a client trusts it through ``SSL_CERT_FILE=<ca_file>``, which
``ssl.create_default_context()`` (what crhelper uses) honours. The CA/leaf split, rather than
one self-signed certificate, keeps strict X.509 verification (Python 3.13's default) happy.
"""

import datetime
import ipaddress
import json
import shutil
import ssl
import sys
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"
# CloudFormation bodies are at most 4 KiB; anything far larger is a bug in the sender.
_MAX_BODY = 1024 * 1024
_SOCKET_TIMEOUT = 10.0


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """Write ``ca.pem``, ``server.pem`` and ``server.key`` into ``directory``; return the paths."""
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("imported-key-cdk test CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_file, cert_file, key_file = (
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
    )
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    # A stuck client must not hold a handler thread (or stop()) forever.
    timeout = _SOCKET_TIMEOUT

    def setup(self) -> None:
        # TLS is set up here, in the connection's own thread, so a client that never completes
        # the handshake cannot block the accept loop.
        self.request.settimeout(_SOCKET_TIMEOUT)
        self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self.send_error(413, "body too large")
            return
        raw = self.rfile.read(length)
        url = f"https://{HOST}:{self.server.server_address[1]}{self.path}"
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = {"_unparsable_body": raw.decode("utf-8", errors="replace")}
        self.server.owner._record(url, body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _refuse(self) -> None:
        self.send_error(405, "CloudFormation response URLs take PUT only")

    do_GET = do_POST = do_DELETE = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: pytest shows stderr of failing tests, and access logs are just noise there.
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: "CfnResponseServer", tls: ssl.SSLContext) -> None:
        self.owner = owner
        self.tls = tls
        super().__init__((HOST, 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that rejects the certificate shows up here as an SSL error: keep it for
        # tests to look at instead of printing a traceback.
        error = sys.exception()
        self.owner._record_error(f"{client_address}: {type(error).__name__}: {error}")


class CfnResponseServer:
    """Receives custom-resource responses at ``https://127.0.0.1:<port>/...``."""

    def __init__(self) -> None:
        self._directory = Path(tempfile.mkdtemp(prefix="cfn-response-server-"))
        try:
            self.ca_file, cert_file, key_file = write_certificates(self._directory)
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.minimum_version = ssl.TLSVersion.TLSv1_2
            tls.load_cert_chain(cert_file, key_file)
            self._server = _Server(self, tls)
        except BaseException:
            shutil.rmtree(self._directory, ignore_errors=True)
            raise
        self.port: int = self._server.server_address[1]
        self._responses: dict[str, list[dict[str, Any]]] = {}
        self._errors: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"cfn-response-server-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def response_url(self, name: str = "response") -> str:
        """A fresh URL shaped like CloudFormation's pre-signed S3 URL; unique per call."""
        return (
            f"https://{HOST}:{self.port}/cloudformation-custom-resource-response-useast1/"
            f"{quote(name, safe='')}/{uuid.uuid4()}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Expires=7200&X-Amz-Signature={uuid.uuid4().hex}"
        )

    @property
    def responses(self) -> dict[str, dict[str, Any]]:
        """The latest body received per URL (a snapshot)."""
        with self._changed:
            return {url: bodies[-1] for url, bodies in self._responses.items()}

    def all_responses(self, url: str) -> list[dict[str, Any]]:
        """Every body PUT to ``url``, oldest first: more than one means the sender retried."""
        with self._changed:
            return list(self._responses.get(url, []))

    @property
    def errors(self) -> list[str]:
        """Connections that failed (for example a client that did not trust the certificate)."""
        with self._changed:
            return list(self._errors)

    def wait_for(self, url: str, timeout: float = 10.0) -> dict[str, Any]:
        """The body PUT to ``url``; ``TimeoutError`` if none arrives within ``timeout`` s."""
        with self._changed:
            if not self._changed.wait_for(lambda: url in self._responses, timeout=timeout):
                raise TimeoutError(
                    f"no response PUT to {url} within {timeout} s; received: "
                    f"{sorted(self._responses) or 'nothing'}; failed connections: "
                    f"{self._errors or 'none'}"
                )
            return self._responses[url][-1]

    def _record(self, url: str, body: dict[str, Any]) -> None:
        with self._changed:
            self._responses.setdefault(url, []).append(body)
            self._changed.notify_all()

    def _record_error(self, description: str) -> None:
        with self._changed:
            self._errors.append(description)
            self._changed.notify_all()

    def stop(self) -> None:
        """Stop serving, close the socket and remove the certificates."""
        try:
            self._server.shutdown()
            self._thread.join(timeout=_SOCKET_TIMEOUT)
            self._server.server_close()
        finally:
            shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
