"""Logging levels that keep material out of every log line.

botocore logs request and response bodies at DEBUG, including GetSecretValue's SecretBinary;
crhelper logs whole events and response URLs at DEBUG. Their loggers get their own levels so
that neither Lambda's application log level nor a root logger at DEBUG can turn that on.
"""

import logging
import os

# Loggers that may see a secret's value or a presigned response URL when verbose.
QUIETED_LOGGERS = {
    "botocore": logging.WARNING,
    "boto3": logging.WARNING,
    "urllib3": logging.WARNING,
    "s3transfer": logging.WARNING,
    "crhelper": logging.INFO,
}
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def handler_log_level() -> str:
    """The handler's own level from LOG_LEVEL (DEBUG allowed; it never logs material)."""
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    return level if level in _LEVELS else "INFO"


def quiet_noisy_loggers() -> None:
    for name, level in QUIETED_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger("imported_key_handler").setLevel(handler_log_level())
