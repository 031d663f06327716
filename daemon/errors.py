"""fadelink's own few exceptions; backends convert everything they raise into these."""


class FadelinkError(Exception):
    """Base class: str(err) is a message a person can read."""


class TransientError(FadelinkError):
    """Worth retrying later (network down, rate limit, server error)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unreachable(TransientError):
    """The service cannot be reached at all (network down, connection refused): rather than
    retrying blindly, wait until it answers again."""


class PermanentError(FadelinkError):
    """This share cannot succeed; the message says why."""


class NeedsSignIn(FadelinkError):
    """The backend lost its credentials: stop uploading, keep the queue."""


class NotAnImage(FadelinkError):
    """The file is not an image we can prepare (ignored, not a failure)."""


class IncompleteImage(FadelinkError):
    """The image does not decode fully yet: maybe still being written."""


class BadImage(FadelinkError):
    """The image is refused for good (decompression bomb, unsupported)."""
