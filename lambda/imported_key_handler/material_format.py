"""Check material against its key spec and put it in the form KMS takes: bytes in, bytes out.

Symmetric and HMAC keys take the raw secret bytes. RSA and elliptic-curve keys take a PKCS#8
DER private key: PEM (PKCS#8, PKCS#1 RSA or SEC1 EC) and traditional DER are converted. Every
error names the secret and what is wrong (sizes, curves), never the material.
"""

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import contract
from .contract import KeySpec
from .errors import ImportFailure

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def prepare_material(material: bytes, spec: KeySpec, secret_arn: str) -> bytes:
    """The bytes to wrap and import for ``spec``, after checking them."""
    if not material:
        raise ImportFailure(
            f"Secret {secret_arn} is empty: put the key material in it (see the README's "
            "table of encodings)."
        )
    if spec.family in (contract.SYMMETRIC, contract.HMAC):
        if material.lstrip().startswith(b"-----BEGIN"):
            raise ImportFailure(
                f"Secret {secret_arn} holds a PEM document, but a {spec.name} key takes raw "
                "secret bytes: store those (raw, base64 or hex)."
            )
        _check_secret_length(len(material), spec, secret_arn)
        return material
    key = load_private_key(material, secret_arn)
    check_private_key(key, spec, secret_arn)
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def prepare_materials(materials: list[bytes], spec: KeySpec, secret_arn: str) -> list[bytes]:
    """Every material of a rotating key, each checked, none twice, within KMS's rotations."""
    prepared = [prepare_material(material, spec, secret_arn) for material in materials]
    if len(set(prepared)) != len(prepared):
        raise ImportFailure(
            f"Secret {secret_arn} lists the same material twice: list each material once, "
            "oldest first."
        )
    if len(prepared) > contract.MAX_ON_DEMAND_ROTATIONS + 1:
        raise ImportFailure(
            f"Secret {secret_arn} lists {len(prepared)} materials; KMS allows a key "
            f"{contract.MAX_ON_DEMAND_ROTATIONS} on-demand rotations."
        )
    return prepared


def _check_secret_length(length: int, spec: KeySpec, secret_arn: str) -> None:
    if spec.family == contract.SYMMETRIC and length != spec.min_material_bytes:
        raise ImportFailure(
            f"Secret {secret_arn} holds {length} bytes; a {spec.name} key takes exactly "
            f"{spec.min_material_bytes} (e.g. `openssl rand 32`)."
        )
    if not spec.min_material_bytes <= length <= spec.max_material_bytes:
        raise ImportFailure(
            f"Secret {secret_arn} holds {length} bytes; a {spec.name} key takes "
            f"{spec.min_material_bytes} to {spec.max_material_bytes} bytes."
        )


def load_private_key(material: bytes, secret_arn: str, *, checked: bool = False) -> PrivateKey:
    """Parse PEM or DER (PKCS#8, PKCS#1, SEC1); refuse encrypted keys and other key types.

    ``checked``: these exact bytes already passed the full load, so the slow RSA consistency
    check (about 0.5 s for a 4096-bit key) is not run again.
    """
    pem = material.lstrip().startswith(b"-----BEGIN")
    try:
        if pem:
            key = serialization.load_pem_private_key(
                material, password=None, unsafe_skip_rsa_key_validation=checked
            )
        else:
            key = serialization.load_der_private_key(
                material, password=None, unsafe_skip_rsa_key_validation=checked
            )
    except TypeError:
        raise ImportFailure(
            f"Secret {secret_arn} holds an encrypted private key: store it unencrypted "
            "(`openssl pkcs8 -topk8 -nocrypt`); Secrets Manager already encrypts it."
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        # cryptography refuses RSA keys with more than two primes here too.
        raise ImportFailure(
            f"Secret {secret_arn} does not hold a private key KMS can import (PKCS#8, PKCS#1 "
            "or SEC1, PEM or DER, two-prime RSA or a named curve)."
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ImportFailure(
            f"Secret {secret_arn} holds an unsupported kind of key "
            f"({type(key).__name__.removeprefix('_')}); only RSA and elliptic-curve private keys "
            "can be imported."
        )
    return key


def check_private_key(key: PrivateKey, spec: KeySpec, secret_arn: str) -> None:
    if spec.family == contract.RSA:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ImportFailure(
                f"Secret {secret_arn} holds an EC key, but the key spec is {spec.name}."
            )
        if key.key_size != spec.modulus_bits:
            raise ImportFailure(
                f"Secret {secret_arn} holds a {key.key_size}-bit RSA key, but the key spec is "
                f"{spec.name}: use a {spec.modulus_bits}-bit key or change key_spec."
            )
        return
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ImportFailure(
            f"Secret {secret_arn} holds an RSA key, but the key spec is {spec.name}."
        )
    if key.curve.name != spec.curve:
        raise ImportFailure(
            f"Secret {secret_arn} holds a key on curve {key.curve.name}, but {spec.name} "
            f"needs {spec.curve}."
        )
