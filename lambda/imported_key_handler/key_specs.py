"""Which key specs take imported material, and how each may be wrapped.

Pure data and arithmetic (no boto3, no cryptography): the construct checks its props with it at
synth time, and the handler checks the same rules at deploy time.
"""

from dataclasses import dataclass
from typing import Final

from . import protocol

ENCRYPT_DECRYPT: Final = "ENCRYPT_DECRYPT"
SIGN_VERIFY: Final = "SIGN_VERIFY"
GENERATE_VERIFY_MAC: Final = "GENERATE_VERIFY_MAC"
KEY_AGREEMENT: Final = "KEY_AGREEMENT"

SYMMETRIC: Final = "symmetric"
HMAC: Final = "hmac"
RSA: Final = "rsa"
ECC: Final = "ecc"


@dataclass(frozen=True)
class KeySpec:
    name: str
    family: str
    usages: tuple[str, ...]  # the first is the default
    min_material_bytes: int
    # The largest material KMS takes for the spec: the raw key for symmetric and HMAC keys, the
    # PKCS#8 DER private key (with its public key, as OpenSSL writes it) for asymmetric ones.
    max_material_bytes: int
    digest_bits: int | None = None  # HMAC
    curve: str | None = None  # ECC, as `cryptography` names it
    modulus_bits: int | None = None  # RSA


def _hmac(bits: int) -> KeySpec:
    return KeySpec(f"HMAC_{bits}", HMAC, (GENERATE_VERIFY_MAC,), bits // 8, 128, digest_bits=bits)


def _rsa(bits: int) -> KeySpec:
    # A PKCS#8 RSA key is about 0.6 bytes per modulus bit; RSA keys only go by RSA_AES_KEY_WRAP.
    return KeySpec(f"RSA_{bits}", RSA, (ENCRYPT_DECRYPT, SIGN_VERIFY), 64, bits, modulus_bits=bits)


def _ecc(name: str, curve: str, der_bytes: int, usages: tuple[str, ...]) -> KeySpec:
    return KeySpec(name, ECC, usages, 32, der_bytes, curve=curve)


KEY_SPECS: Final = {
    spec.name: spec
    for spec in (
        KeySpec(protocol.SYMMETRIC_DEFAULT, SYMMETRIC, (ENCRYPT_DECRYPT,), 32, 32),
        _hmac(224),
        _hmac(256),
        _hmac(384),
        _hmac(512),
        _rsa(2048),
        _rsa(3072),
        _rsa(4096),
        _ecc("ECC_NIST_P256", "secp256r1", 138, (SIGN_VERIFY, KEY_AGREEMENT)),
        _ecc("ECC_NIST_P384", "secp384r1", 185, (SIGN_VERIFY, KEY_AGREEMENT)),
        _ecc("ECC_NIST_P521", "secp521r1", 241, (SIGN_VERIFY, KEY_AGREEMENT)),
        _ecc("ECC_SECG_P256K1", "secp256k1", 135, (SIGN_VERIFY,)),
    )
}

# Specs KMS has but that cannot take imported material here, with the reason to show.
REFUSED_KEY_SPECS: Final = {
    "ML_DSA_44": "ML-DSA keys cannot take imported material",
    "ML_DSA_65": "ML-DSA keys cannot take imported material",
    "ML_DSA_87": "ML-DSA keys cannot take imported material",
    "SM2": "SM2 is for the China Regions only, which this library does not support",
    "ECC_NIST_EDWARDS25519": "KMS does not take imported material for Ed25519 keys",
}

WRAPPING_KEY_BITS: Final = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}


def oaep_capacity(modulus_bits: int, algorithm: str) -> int:
    """Largest plaintext in bytes that RSA-OAEP with this algorithm's hash can encrypt."""
    digest_bytes = 20 if algorithm.endswith("_SHA_1") else 32
    return modulus_bits // 8 - 2 * digest_bytes - 2


def allowed_wrappings(spec: KeySpec) -> list[tuple[str, str]]:
    """Every (WrappingAlgorithm, WrappingKeySpec) that KMS takes for this key spec."""
    pairs: list[tuple[str, str]] = []
    for wrapping_key_spec, bits in WRAPPING_KEY_BITS.items():
        for algorithm in protocol.WRAPPING_ALGORITHMS:
            if algorithm in protocol.OAEP_ALGORITHMS:
                fits = spec.max_material_bytes <= oaep_capacity(bits, algorithm)
                if spec.family != RSA and fits:
                    pairs.append((algorithm, wrapping_key_spec))
            elif spec.family in (RSA, ECC):
                # AES key wrap is for private keys; KMS takes OAEP only for secret keys.
                pairs.append((algorithm, wrapping_key_spec))
    return pairs


def default_wrapping(spec: KeySpec) -> tuple[str, str]:
    """The strongest choice: RSA_4096, with OAEP-SHA-256 for secret keys and AES key wrap
    with SHA-256 for private keys."""
    if spec.family in (RSA, ECC):
        return protocol.RSA_AES_KEY_WRAP_SHA_256, "RSA_4096"
    return protocol.RSAES_OAEP_SHA_256, "RSA_4096"


def wrapping_refusal(spec: KeySpec, algorithm: str, wrapping_key_spec: str) -> str | None:
    """Why KMS would refuse this wrapping for this key spec, or None if it takes it."""
    if (algorithm, wrapping_key_spec) in allowed_wrappings(spec):
        return None
    valid = sorted({a for a, s in allowed_wrappings(spec) if s == wrapping_key_spec})
    if spec.family == RSA and algorithm in protocol.OAEP_ALGORITHMS:
        why = "an RSA private key does not fit RSA-OAEP"
    elif spec.family in (SYMMETRIC, HMAC) and algorithm in protocol.RSA_AES_ALGORITHMS:
        why = "KMS takes secret-key material by RSA-OAEP only"
    elif algorithm in protocol.OAEP_ALGORITHMS:
        capacity = oaep_capacity(WRAPPING_KEY_BITS.get(wrapping_key_spec, 0), algorithm)
        why = f"{spec.max_material_bytes} bytes of material exceed its capacity of {capacity}"
    else:
        why = "the combination is not supported"
    return (
        f"{spec.name} material cannot be wrapped with {algorithm} under {wrapping_key_spec}: "
        f"{why}. Valid algorithms for {wrapping_key_spec}: {', '.join(valid) or 'none'}."
    )
