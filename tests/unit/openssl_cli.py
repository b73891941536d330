"""The OpenSSL 3 command line, as AWS documents it for importing key material into KMS.

This is an implementation of the KMS wrapping formats that shares no code with the
project's ``wrapping.py`` (which uses ``cryptography``): every operation here runs the
``openssl`` binary in a subprocess, with explicit arguments (no shell), inputs and outputs
in a private temporary directory, a bounded timeout and ``check=True``. A failing command
raises :class:`OpenSSLError` carrying the command line (AES keys redacted) and its stderr.

Commands (AWS KMS Developer Guide, "Encrypt key material with OpenSSL"):

* RSA-OAEP: ``openssl pkeyutl -encrypt -pubin -keyform DER -inkey <pub.der>
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:<md> -pkeyopt rsa_mgf1_md:<md>``
  and ``openssl pkeyutl -decrypt -inkey <private.pem>`` with the same ``-pkeyopt`` options.
* AES Key Wrap with Padding (RFC 5649): ``openssl enc -id-aes256-wrap-pad -K <hex>
  -iv A65959A6`` (``-d`` to unwrap); the 128- and 192-bit variants are picked by KEK length.

OpenSSL 3.0's ``enc`` feeds a wrap cipher through a 4096-byte buffer, so a longer input is
cut into several independent wraps (and ``-bufsize`` does not change that). The wrap helpers
here refuse inputs above that limit instead of returning a wrong answer; KMS material is at
most about 2.4 KB (an RSA_4096 PKCS#8 key), well inside it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, Literal

OAEPHash = Literal["sha1", "sha256"]

OPENSSL: Final[str] = shutil.which("openssl") or "/usr/bin/openssl"
TIMEOUT_SECONDS: Final[float] = 60.0
# RFC 5649 section 3: the alternative initial value (AIV) prefix for AES-KWP.
AES_KWP_IV: Final[str] = "A65959A6"
# ``openssl enc`` processes a wrap cipher in chunks of this many bytes (see module docstring).
ENC_CHUNK_BYTES: Final[int] = 4096
MAX_WRAP_INPUT_BYTES: Final[int] = ENC_CHUNK_BYTES - 8
AES_KEY_BYTES: Final[int] = 32

_KWP_CIPHERS: Final[Mapping[int, str]] = {
    16: "-id-aes128-wrap-pad",
    24: "-id-aes192-wrap-pad",
    32: "-id-aes256-wrap-pad",
}

# The KMS wrapping algorithms: (family, hash used for both OAEP and MGF1).
_ALGORITHMS: Final[Mapping[str, tuple[Literal["oaep", "rsa_aes"], OAEPHash]]] = {
    "RSAES_OAEP_SHA_1": ("oaep", "sha1"),
    "RSAES_OAEP_SHA_256": ("oaep", "sha256"),
    "RSA_AES_KEY_WRAP_SHA_1": ("rsa_aes", "sha1"),
    "RSA_AES_KEY_WRAP_SHA_256": ("rsa_aes", "sha256"),
}
ALGORITHMS: Final[tuple[str, ...]] = tuple(_ALGORITHMS)

_KEY_BITS_RE: Final = re.compile(rb"Private-Key: \((\d+) bit")


class OpenSSLError(RuntimeError):
    """An ``openssl`` command failed, timed out, or was asked for something it cannot do."""


def _redact(args: Sequence[str]) -> str:
    shown: list[str] = []
    hide_next = False
    for arg in args:
        shown.append("<redacted>" if hide_next else arg)
        hide_next = arg == "-K"
    return " ".join(shown)


def run_openssl(args: Sequence[str], *, timeout: float = TIMEOUT_SECONDS) -> bytes:
    """Run ``openssl <args>`` and return its stdout; raise :class:`OpenSSLError` on failure."""
    command = [OPENSSL, *args]
    try:
        completed = subprocess.run(
            command, capture_output=True, check=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.CalledProcessError as exc:
        stderr = exc.stderr.decode("utf-8", "replace").strip()
        raise OpenSSLError(f"`{_redact(command)}` exited with {exc.returncode}: {stderr}") from None
    except subprocess.TimeoutExpired:
        raise OpenSSLError(f"`{_redact(command)}` did not finish within {timeout} s") from None
    except OSError as exc:
        raise OpenSSLError(f"cannot run {OPENSSL}: {exc}") from None
    return completed.stdout


def _hash_for(algorithm: str) -> tuple[Literal["oaep", "rsa_aes"], OAEPHash]:
    try:
        return _ALGORITHMS[algorithm]
    except KeyError:
        raise OpenSSLError(
            f"unknown wrapping algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}"
        ) from None


# --- keys -------------------------------------------------------------------------------


def generate_rsa_private_key(path: Path, bits: int) -> Path:
    """Write a new RSA private key (PKCS#8 PEM, unencrypted) to ``path`` and return it."""
    run_openssl(
        ["genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}", "-out", str(path)]
    )
    return path


def generate_private_key(path: Path, algorithm: str) -> Path:
    """Write a new private key of another ``genpkey`` algorithm (``EC``, ``SM2``...)."""
    args = ["genpkey", "-algorithm", algorithm, "-out", str(path)]
    if algorithm == "EC":
        args[3:3] = ["-pkeyopt", "ec_paramgen_curve:P-256"]
    run_openssl(args)
    return path


def public_key_der(private_key_pem: Path) -> bytes:
    """The DER SubjectPublicKeyInfo of a private key, as GetParametersForImport returns it."""
    return run_openssl(["pkey", "-in", str(private_key_pem), "-pubout", "-outform", "DER"])


def rsa_modulus_bits(private_key_pem: Path) -> int:
    """The modulus size in bits, read from ``openssl pkey -text``."""
    text = run_openssl(["pkey", "-in", str(private_key_pem), "-noout", "-text"])
    match = _KEY_BITS_RE.search(text)
    if match is None:
        raise OpenSSLError(f"{private_key_pem} does not look like an RSA private key")
    return int(match.group(1))


def random_bytes(count: int) -> bytes:
    """``count`` bytes from ``openssl rand``."""
    data = run_openssl(["rand", str(count)])
    if len(data) != count:
        raise OpenSSLError(f"openssl rand returned {len(data)} bytes, wanted {count}")
    return data


# --- RSA-OAEP ---------------------------------------------------------------------------


def _oaep_options(oaep_hash: OAEPHash, mgf1_hash: OAEPHash | None) -> list[str]:
    return [
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        f"rsa_oaep_md:{oaep_hash}",
        "-pkeyopt",
        f"rsa_mgf1_md:{mgf1_hash or oaep_hash}",
    ]


def rsa_oaep_encrypt(
    plaintext: bytes,
    public_key: bytes,
    oaep_hash: OAEPHash,
    mgf1_hash: OAEPHash | None = None,
) -> bytes:
    """RSA-OAEP encrypt with a DER public key; MGF1 uses ``oaep_hash`` unless told otherwise."""
    with tempfile.TemporaryDirectory(prefix="openssl-cli-") as tmp:
        key_path, in_path, out_path = Path(tmp, "pub.der"), Path(tmp, "in"), Path(tmp, "out")
        key_path.write_bytes(public_key)
        in_path.write_bytes(plaintext)
        args = ["pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", str(key_path)]
        args += ["-in", str(in_path), "-out", str(out_path), *_oaep_options(oaep_hash, mgf1_hash)]
        run_openssl(args)
        return out_path.read_bytes()


def rsa_oaep_decrypt(
    ciphertext: bytes,
    private_key_pem: Path,
    oaep_hash: OAEPHash,
    mgf1_hash: OAEPHash | None = None,
) -> bytes:
    """RSA-OAEP decrypt with a PEM private key; MGF1 uses ``oaep_hash`` unless told otherwise."""
    with tempfile.TemporaryDirectory(prefix="openssl-cli-") as tmp:
        in_path, out_path = Path(tmp, "in"), Path(tmp, "out")
        in_path.write_bytes(ciphertext)
        args = ["pkeyutl", "-decrypt", "-inkey", str(private_key_pem)]
        args += ["-in", str(in_path), "-out", str(out_path), *_oaep_options(oaep_hash, mgf1_hash)]
        run_openssl(args)
        return out_path.read_bytes()


# --- AES Key Wrap with Padding (RFC 5649) -----------------------------------------------


def _kwp(kek: bytes, data: bytes, *, decrypt: bool) -> bytes:
    cipher = _KWP_CIPHERS.get(len(kek))
    if cipher is None:
        raise OpenSSLError(f"an AES key-encryption key is 16, 24 or 32 bytes, not {len(kek)}")
    limit = ENC_CHUNK_BYTES if decrypt else MAX_WRAP_INPUT_BYTES
    if len(data) > limit:
        raise OpenSSLError(
            f"openssl enc cannot {'unwrap' if decrypt else 'wrap'} {len(data)} bytes in one "
            f"piece (at most {limit}); it would split the input into several wraps"
        )
    with tempfile.TemporaryDirectory(prefix="openssl-cli-") as tmp:
        in_path, out_path = Path(tmp, "in"), Path(tmp, "out")
        in_path.write_bytes(data)
        args = ["enc", *(["-d"] if decrypt else []), cipher, "-K", kek.hex(), "-iv", AES_KWP_IV]
        args += ["-in", str(in_path), "-out", str(out_path)]
        run_openssl(args)
        return out_path.read_bytes()


def aes_key_wrap_pad(kek: bytes, plaintext: bytes) -> bytes:
    """``openssl enc -id-aes<N>-wrap-pad -K <kek> -iv A65959A6``."""
    return _kwp(kek, plaintext, decrypt=False)


def aes_key_unwrap_pad(kek: bytes, wrapped: bytes) -> bytes:
    """``openssl enc -d -id-aes<N>-wrap-pad -K <kek> -iv A65959A6``."""
    return _kwp(kek, wrapped, decrypt=True)


# --- the KMS formats --------------------------------------------------------------------


def openssl_wrap(material: bytes, public_key: bytes, algorithm: str) -> bytes:
    """``EncryptedKeyMaterial`` for ``material`` made with the OpenSSL CLI only."""
    family, md = _hash_for(algorithm)
    if family == "oaep":
        return rsa_oaep_encrypt(material, public_key, md)
    aes_key = random_bytes(AES_KEY_BYTES)
    wrapped = aes_key_wrap_pad(aes_key, material)
    return rsa_oaep_encrypt(aes_key, public_key, md) + wrapped


def openssl_unwrap(encrypted: bytes, private_key_pem: Path, algorithm: str) -> bytes:
    """Recover the material from ``EncryptedKeyMaterial`` with the OpenSSL CLI only."""
    family, md = _hash_for(algorithm)
    if family == "oaep":
        return rsa_oaep_decrypt(encrypted, private_key_pem, md)
    modulus_bytes = (rsa_modulus_bits(private_key_pem) + 7) // 8
    if len(encrypted) <= modulus_bytes:
        raise OpenSSLError(
            f"{algorithm} output must be longer than the {modulus_bytes}-byte RSA part, "
            f"got {len(encrypted)} bytes"
        )
    rsa_part, wrapped = encrypted[:modulus_bytes], encrypted[modulus_bytes:]
    aes_key = rsa_oaep_decrypt(rsa_part, private_key_pem, md)
    return aes_key_unwrap_pad(aes_key, wrapped)
