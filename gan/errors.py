"""The one exception type the command line turns into a clean message instead of a traceback."""


class GanError(Exception):
    """A problem the user can fix: the message names the file or flag and says how."""


def first_line(error: BaseException) -> str:
    """An exception as a short reason: its type and the first line of its message (libraries' can run to pages)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
