"""Crash-point hook for crash-safety tests, the one test hook in daemon/.

FADELINK_CRASH_AT=<stage> makes the process SIGKILL itself when it reaches that stage, the way
databases test crash safety. Unset (always, outside tests), it costs one dict lookup.
"""

import os
import signal

STAGES = (
    "after_pending",  # share recorded, nothing prepared
    "after_prepare",  # prepared copy written and recorded
    "after_uploading",  # remote path recorded, transfer not done
    "after_upload",  # remote copy complete, no link yet
    "after_live",  # link recorded, not yet on clipboard / notified
    "after_revoking",  # revocation recorded, remote not touched
    "after_remote_revoked",  # remote revoked and deleted, journal not yet updated
)


def crashpoint(stage: str) -> None:
    if os.environ.get("FADELINK_CRASH_AT") == stage:
        os.kill(os.getpid(), signal.SIGKILL)
