"""One exception type for problems a user can fix; the CLI prints it as one line."""


class DfadError(Exception):
    """A user-facing error: the message names the problem and the fix."""


class Interrupted(DfadError):
    """A run stopped on SIGINT / SIGTERM after saving its state; `exit_code` follows the shell
    convention 128 + signal number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
