"""Is a listed path a regular file this process can read? Asked before anything opens it.

Broken links, link loops, folders, FIFOs (opening one blocks forever) and unreadable files named like audio
each become a quarantine record instead of reaching the decoder. Local paths only: object stores have none of
these, and their read errors are caught at decoding. No TensorFlow: Beam workers import this module.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple, Optional

BROKEN_LINK = "broken_link"      # a symbolic link whose target does not exist
LINK_LOOP = "link_loop"          # symbolic links that point at each other
IS_DIRECTORY = "is_directory"    # a folder named like an audio file
SPECIAL_FILE = "special_file"    # a FIFO, socket or device named like an audio file
UNREADABLE = "unreadable"        # exists, but cannot be opened (permissions, I/O error)
REASONS = (BROKEN_LINK, LINK_LOOP, IS_DIRECTORY, SPECIAL_FILE, UNREADABLE)
DIRECTORY_DETAIL = "a folder named like an audio file"

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


class Problem(NamedTuple):
    """Why a file is quarantined or an entry excluded (a reason code), and the detail a person reads."""

    reason: str
    detail: str


def is_local(path: str) -> bool:
    return "://" not in path


def unreadable(error: OSError) -> Problem:
    """The record for a file that could not be opened or read."""
    return Problem(UNREADABLE, f"cannot read the file: {error.strerror or error}")


def check(path: str) -> Optional[Problem]:
    """None when ``path`` is a regular file that opens for reading, else why not."""
    if not is_local(path):
        return None
    try:
        mode = os.stat(path).st_mode  # follows links
    except FileNotFoundError:
        if os.path.islink(path):
            return Problem(BROKEN_LINK, f"symbolic link to {os.readlink(path)!r}, which does not exist")
        return Problem(UNREADABLE, "the file disappeared while the folder was being read")
    except OSError as e:
        if e.errno == errno.ELOOP:
            return Problem(LINK_LOOP, f"symbolic link loop ({e.strerror})")
        return unreadable(e)
    if stat.S_ISDIR(mode):
        return Problem(IS_DIRECTORY, DIRECTORY_DETAIL)
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        return Problem(SPECIAL_FILE, f"{kind} named like an audio file")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        return unreadable(e)
    return None
