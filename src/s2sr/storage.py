"""The folders a run writes to: writable and roomy enough before the first tile, and faults met while
writing named as ``StorageError`` (exit code 7), never a traceback.

A run needs room in two places at once: the staging folder (the system's temporary folder, ``TMPDIR``),
which holds the uncompressed pixels and their overviews, and the output folder, where the COG is made
beside its target. The check asks for the uncompressed size in both (the compressed COG is never larger
than its pixels); on one filesystem it asks for the sum. Free space is what an unprivileged process may use
(``f_bavail``); quotas are not visible beforehand and are met as ``EDQUOT`` while writing.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import StorageError

#: errno of a fault of the machine's storage, and what to do about it.
FIXES = {
    errno.ENOSPC: "no space left on the device; free space there or write elsewhere",
    errno.EDQUOT: "disk quota exceeded; free space within the quota or write elsewhere",
    errno.EFBIG: "file too large for that filesystem; write elsewhere",
    errno.EROFS: "read-only filesystem; mount it writable or write elsewhere",
    errno.EACCES: "permission denied; make it writable for this user or write elsewhere",
    errno.EPERM: "operation not permitted; make it writable for this user or write elsewhere",
    errno.EIO: "input/output error of the device; check the disk or write elsewhere",
}
#: GDAL reports a failed write without its errno; with less than this free in the folder it wrote to, the
#: write failed for want of room (a block GDAL writes is a few MB; 64 MiB leaves room for another writer).
FULL_BELOW = 64 * 2**20
#: Room asked for beyond the pixels: STAC Item, TIFF headers and tile index, GDAL's side files.
MARGIN = 16 * 2**20


def staging_root(staging_dir: Path | None = None) -> Path:
    """The folder staging files go to: ``staging_dir``, else the system's temporary folder (``TMPDIR``)."""
    if staging_dir is not None:
        return Path(staging_dir)
    try:
        return Path(tempfile.gettempdir())
    except FileNotFoundError as exc:  # no candidate (TMPDIR, /tmp, /var/tmp, .) is writable
        raise StorageError(errno.EACCES, f"no writable temporary folder for staging ({exc}); set TMPDIR to a "
                                         "writable folder with room") from None


#: Staging folders are named ``s2sr-staging-HOST-PID-...``: whose run they hold, so that a later run on the
#: same host can tell a killed run's leftovers (4.1 GB for a whole product) from a live run's work.
STAGING_PREFIX = "s2sr-staging-"


def staging_prefix() -> str:
    """The prefix of this process's staging folders (``tempfile.mkdtemp``)."""
    return f"{STAGING_PREFIX}{_host()}-{os.getpid()}-"


def _host() -> str:
    return socket.gethostname().replace("-", "_") or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_staging(root: Path) -> list[Path]:
    """Remove the staging folders in ``root`` left by runs on this host whose process is gone (a kill, an
    out-of-memory kill): a year of scenes with a few killed runs must not fill the disk. Folders of live
    processes and of other hosts (a shared ``TMPDIR``) are left alone. Returns what was removed."""
    removed = []
    try:
        candidates = list(root.glob(f"{STAGING_PREFIX}{_host()}-*-*"))
    except OSError:
        return removed
    for folder in candidates:
        pid = folder.name[len(STAGING_PREFIX) + len(_host()) + 1 :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)) or not folder.is_dir():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
    return removed


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged process may still write on the filesystem of ``folder`` (or its nearest parent)."""
    stat = os.statvfs(_existing(folder))
    return stat.f_bavail * stat.f_frsize


def check_folders(needs: Iterable[tuple[Path, int, str]]) -> None:
    """Each ``(folder, bytes, what)``: the folder (or, not made yet, its nearest existing parent) takes a
    file, and its filesystem has room for the bytes of every folder on it. Raises StorageError naming the
    folder, the bytes needed and the bytes free."""
    needs = list(needs)
    by_device: dict[int, int] = {}
    for folder, size, what in needs:
        probe_writable(folder, what)
        device = os.stat(_existing(folder)).st_dev
        by_device[device] = by_device.get(device, 0) + size
    for folder, size, what in needs:
        needed = by_device[os.stat(_existing(folder)).st_dev]
        free = free_bytes(folder)
        if free < needed:
            shared = " (with the other folders of this run on that filesystem)" if needed > size else ""
            raise StorageError(errno.ENOSPC, f"{what} {folder} has {free} bytes free, the run needs {needed}{shared}; "
                                             "free space there or write elsewhere")


def probe_writable(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder`` (or its nearest existing parent): the one test that sees a
    read-only mount, permissions and ACLs as the writes will."""
    parent = _existing(folder)
    try:
        fd, name = tempfile.mkstemp(prefix=".s2sr-probe-", dir=parent)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise as_storage_error(exc, folder, what) or exc from None


def as_storage_error(exc: BaseException, folder: Path, what: str) -> StorageError | None:
    """``exc`` as a StorageError if it is a fault of the storage of ``folder``; None if it is not.

    An OSError says so by its errno. GDAL's write errors carry none: one met while ``folder`` is (nearly)
    full is taken for a full disk, one where the folder no longer takes a file for that fault.
    """
    if isinstance(exc, StorageError):
        return exc
    code = exc.errno if isinstance(exc, OSError) else None
    if code in FIXES:
        return StorageError(code, f"cannot write to {what} {folder}: {FIXES[code]}")
    if not type(exc).__module__.startswith("rasterio"):
        return None
    try:
        if free_bytes(folder) < FULL_BELOW:
            return short_write(folder, what, folder)
        probe_writable(folder, what)
    except StorageError as fault:
        return fault
    except OSError:
        return None
    return None


def short_write(folder: Path, what: str, path: Path) -> StorageError:
    """The fault behind a file of ``folder`` that a library wrote short without raising: a full disk where
    the folder is (nearly) full, else an I/O error of the device."""
    free = free_bytes(folder)
    if free < FULL_BELOW:
        return StorageError(errno.ENOSPC, f"{what} {folder} filled up while this run wrote to it ({free} bytes free); "
                                          f"{FIXES[errno.ENOSPC]}")
    return StorageError(errno.EIO, f"{path} in {what} was not written whole: {FIXES[errno.EIO]}")


@contextmanager
def storage_faults(folder: Path, what: str) -> Iterator[None]:
    """Raise a fault of the storage of ``folder`` met inside the block as StorageError; others as they are."""
    try:
        yield
    except Exception as exc:
        fault = as_storage_error(exc, folder, what)
        if fault is None or fault is exc:
            raise
        raise fault from None


def _existing(folder: Path) -> Path:
    """``folder`` or its nearest existing parent (a run makes its output folder; the check must not)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder
