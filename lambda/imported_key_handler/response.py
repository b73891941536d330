"""Send the custom resource response to CloudFormation in bounded time.

crhelper's own sender has no socket timeout and retries forever, which can hold the function
until Lambda kills it. This one tries a few times with a timeout and then gives up loudly.
The response URL is a presigned S3 URL: it is never logged.
"""

import json
import logging
import ssl
import time
from http.client import HTTPException, HTTPSConnection
from typing import Any
from urllib.parse import urlsplit, urlunsplit

logger = logging.getLogger(__name__)

ATTEMPTS = 3
TIMEOUT_S = 5.0
# Worst case of send_response: ATTEMPTS * TIMEOUT_S plus the pauses between attempts. The
# function must stop working this long before its deadline to still be heard.
WORST_CASE_S = ATTEMPTS * TIMEOUT_S + 3.0


def send_response(response_url: str, body: dict[str, Any]) -> bool:
    """PUT ``body`` to ``response_url`` over HTTPS; True once CloudFormation took it."""
    data = json.dumps(body).encode()
    parts = urlsplit(response_url)
    path = urlunsplit(("", "", parts.path, parts.query, ""))
    headers = {"content-type": "", "content-length": str(len(data))}
    for attempt in range(1, ATTEMPTS + 1):
        connection = HTTPSConnection(
            parts.netloc, timeout=TIMEOUT_S, context=ssl.create_default_context()
        )
        try:
            connection.request("PUT", path, body=data, headers=headers)
            status = connection.getresponse().status
            if 200 <= status < 300:
                logger.info("Sent %s response to CloudFormation", body.get("Status"))
                return True
            logger.warning("CloudFormation response upload answered HTTP %d", status)
        except (OSError, HTTPException) as error:
            logger.warning(
                "CloudFormation response upload failed (%s), attempt %d of %d",
                type(error).__name__,
                attempt,
                ATTEMPTS,
            )
        finally:
            connection.close()
        if attempt < ATTEMPTS:
            time.sleep(attempt)
    logger.error("Gave up sending the response to CloudFormation after %d attempts", ATTEMPTS)
    return False
