"""The errors a user sees as one line (no traceback), and the exit code each gets from the CLI.

Bad input exits 2: `SpecError` (a malformed file, a wrong type or value, an ambiguous name) and `NotFound`
(a name the store or the box list does not know). Work that ran and failed exits 1: `WorkFailed`.
"""


class UserError(Exception):
    """Bad input: the message names the file, field or name and the problem. Exit code 2."""


class SpecError(UserError):
    """A malformed file, an unknown key, a wrong type or value, an ambiguous name."""


class NotFound(UserError):
    """A run, experiment, subject or box that is not there."""


class WorkFailed(Exception):
    """The work ran and did not succeed (a failed job, a box check with a problem). Exit code 1."""


class JobCancelled(BaseException):
    """Raised inside a job when SIGTERM/SIGINT asks it to stop; the runner records `cancelled`."""
