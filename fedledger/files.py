"""Files replaced whole: a reader finds the old content or the new, and a crash of the machine keeps one of them."""

import os
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, durably.

    ``data`` is written to a temporary file beside ``path`` and flushed to disk, the file is renamed
    over ``path``, and the directory is flushed so that the rename itself survives a power cut. A
    failure leaves ``path`` as it was and removes the temporary file.

    Raises:
        OSError: the file or its directory could not be written.
    """
    staging = path.with_name(path.name + ".tmp")
    try:
        with staging.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        staging.replace(path)
    except BaseException:
        if staging.is_file():
            staging.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
