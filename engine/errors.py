"""Errors a user can cause: they print as one line and exit with code 2."""


class SpecError(Exception):
    """Bad input: a malformed file, an unknown name, a wrong type. The message names the file and problem."""


class JobCancelled(BaseException):
    """Raised inside a job when SIGTERM/SIGINT asks it to stop; the runner records `cancelled`."""
