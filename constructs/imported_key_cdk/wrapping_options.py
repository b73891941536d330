"""KMS's names for how material is wrapped on its way in (GetParametersForImport)."""

from enum import StrEnum

from imported_key_handler import contract


class WrappingAlgorithm(StrEnum):
    """``WrappingAlgorithm`` of GetParametersForImport."""

    RSAES_OAEP_SHA_1 = contract.RSAES_OAEP_SHA_1
    RSAES_OAEP_SHA_256 = contract.RSAES_OAEP_SHA_256
    RSA_AES_KEY_WRAP_SHA_1 = contract.RSA_AES_KEY_WRAP_SHA_1
    RSA_AES_KEY_WRAP_SHA_256 = contract.RSA_AES_KEY_WRAP_SHA_256


class WrappingKeySpec(StrEnum):
    """``WrappingKeySpec`` of GetParametersForImport: the size of KMS's RSA wrapping key."""

    RSA_2048 = "RSA_2048"
    RSA_3072 = "RSA_3072"
    RSA_4096 = "RSA_4096"
