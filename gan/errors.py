"""The one exception type the command line turns into a clean message instead of a traceback."""


class GanError(Exception):
    """A problem the user can fix: the message names the file or flag and says how."""
