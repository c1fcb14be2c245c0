"""Errors the CLI maps onto exit codes: 2 for bad input, 1 for "does not fit"."""


class TinymcuError(Exception):
    """Bad input or an unsupported model. The CLI prints ``str(e)`` on one line and exits 2."""

    exit_code = 2


class OverBudget(TinymcuError):
    """The model does not fit the memory budget (or regressed past the allowed limit)."""

    exit_code = 1


class VerificationError(TinymcuError):
    """Our result disagrees with the reference (TFLM): a bug in tinymcu, not in the input."""

    exit_code = 3
