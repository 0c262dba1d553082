"""The one exception type that means "the user gave us bad input".

The command line turns a `UserError` into a single line on stderr and exit code 2; every other exception is a
bug (exit 1, traceback). Raising this anywhere below the CLI is how a module says "the input is wrong, and
here is exactly which part".
"""


class UserError(Exception):
    """Bad input (config, file, flag). `str(err)` is the one line the user sees."""

    def __init__(self, message: str, key: str | None = None):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)
