"""One exception type for problems a user can fix; the CLI prints it as one line."""


class DfadError(Exception):
    """A user-facing error: the message names the problem and the fix."""
