"""Error base classes shared by the cores and the entry points (plain Python, no imports).

``DataError`` marks a data file or folder that is missing, corrupt or inconsistent (a truncated LMDB, keys
listed but absent). It is raised while datasets are built, long after the options were checked, so the entry
points catch this one base class and print it as one line naming the file, like an option error.
"""


class DataError(Exception):
    """A data file or folder is missing, corrupt or inconsistent; the message names it."""
