"""The one exception type whose message may reach CloudFormation."""

# CloudFormation shows the Reason in the console; crhelper keeps only the last 240 characters
# of a longer one, which would cut off the start of the sentence that names the problem.
MAX_REASON_LENGTH = 256


class ImportFailure(Exception):
    """A failure that names the problem and the fix.

    Its message is sent to CloudFormation as the ``Reason`` and logged, so it must never
    contain key material or anything derived from it (lengths and names only).
    """

    def __init__(self, reason: str) -> None:
        if len(reason) > MAX_REASON_LENGTH:
            reason = reason[: MAX_REASON_LENGTH - 3] + "..."
        super().__init__(reason)

    @property
    def reason(self) -> str:
        return str(self.args[0])
