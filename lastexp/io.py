"""Atomic file writes: a reader never sees a half-written metrics.json or checkpoint.

Every file is written to a temporary name beside its target and renamed over it; a folder of
files (the results tables, a run's ``export/``) is written into a temporary folder beside it
and exchanged with it in one rename. Files get the mode ``open()`` would give them (0666 less
the umask), so a shared run store is readable by colleagues. A full disk is one
:class:`DiskFullError` naming the path and the bytes needed; the target stays as it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import io
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class DiskFullError(OSError):
    """No space left (or quota exceeded) while writing ``path``; the message is one line naming
    the path, the bytes it needed and the bytes free there."""

    def __init__(self, path: str | os.PathLike, needed: int | None) -> None:
        free = free_bytes(Path(path).parent)
        need = f"needs {needed:,} bytes" if needed is not None else "needs more space"
        have = f", {free:,} free" if free is not None else ""
        super().__init__(errno.ENOSPC, f"no space left on the device for {path} ({need}{have}); "
                         "free some space there (or choose another folder), then run the "
                         "command again")
        self.path, self.needed = Path(path), needed

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> tuple:  # pickled whole (a SLURM job's result, a worker's error)
        return DiskFullError, (self.path, self.needed)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_line(exc: OSError) -> str:
    """The one line a command prints for a full disk (any ENOSPC, also one not raised here)."""
    if isinstance(exc, DiskFullError):
        return str(exc)
    return str(DiskFullError(exc.filename or "a file", None))


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Bytes an unprivileged user may still write below ``folder`` (None when unknown)."""
    for f in (Path(folder), *Path(folder).parents):
        with contextlib.suppress(OSError):
            st = os.statvfs(f)
            return st.f_bavail * st.f_frsize
    return None


def file_mode() -> int:
    """The mode ``open()`` gives a new file under the process's umask (0644 under 022)."""
    try:  # Linux states it; reading it does not change it (os.umask would, for a moment)
        with open("/proc/self/status") as f:
            umask = next(int(ln.split()[1], 8) for ln in f if ln.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "w") -> None:
    """Call ``write(file)`` on an in-memory file, then write its bytes to a temporary file
    beside ``path`` (mode per the umask), fsync it and rename it over ``path``: a link at
    ``path`` is replaced, never followed. A full disk raises :class:`DiskFullError` (the
    temporary file removed, ``path`` as it was)."""
    path = Path(path)
    buf: io.StringIO | io.BytesIO = io.BytesIO() if "b" in mode else io.StringIO()
    write(buf)
    value = buf.getvalue()
    data = value.encode("utf-8") if isinstance(value, str) else value
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(path, len(data)) from None
        raise
    try:
        try:
            os.fchmod(fd, file_mode())
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            raise DiskFullError(path, len(data)) from None
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write(path, lambda f: json.dump(data, f, indent=2, sort_keys=True, default=str))


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


# atomic_write's temporary names: ".<target name>.<8 characters of mkstemp>.tmp"
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")


def remove_entries(folder: str | os.PathLike, remove: Callable[[os.DirEntry], bool]) -> list[str]:
    """Offer every entry of ``folder`` (in name order; none when the folder cannot be listed)
    to ``remove``, which deletes it or leaves it; returns the names it deleted. The one walk of
    the removals of what a killed command left behind."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return []
    return [entry.name for entry in entries if remove(entry)]


def remove_orphan_temps(folder: str | os.PathLike) -> list[str]:
    """Delete the temporary files :func:`atomic_write` left in ``folder`` when its process was
    killed between writing and renaming (their target is intact: the rename never happened).
    Only names of that exact form are touched; the caller holds the folder's lock. Returns
    the names removed."""

    def orphan(entry: os.DirEntry) -> bool:
        if _TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)
            return True
        return False

    return remove_entries(folder, orphan)


# ----------------------------------------------------------------------- folders as wholes


class FolderBusyError(OSError):
    """Another command holds the lock of the folder."""

    def __str__(self) -> str:
        return str(self.strerror)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, wait: bool = True,
                what: str = "another command") -> Iterator[None]:
    """An exclusive ``flock`` on the folder itself (no lock file is created; the kernel drops
    it when the process dies). ``wait=False`` raises :class:`FolderBusyError` at once."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise FolderBusyError(errno.EBUSY, f"{folder} is in use by {what}; wait for it "
                                  "to finish, then run the command again") from None
        yield
    finally:
        os.close(fd)


def staging_prefix(dest: str | os.PathLike) -> str:
    """Name prefix of the temporary folders :func:`staged_folder` makes beside ``dest``."""
    return f".{Path(dest).name}.tmp-"


def remove_staged_leftovers(dest: str | os.PathLike) -> list[str]:
    """Delete the temporary folders (and a half-exchanged old copy) a killed
    :func:`staged_folder` left beside ``dest``; the caller holds the lock that guards
    ``dest``. Only names of that form are touched, and never through a link."""
    dest = Path(dest)
    prefix = staging_prefix(dest)

    def leftover(entry: os.DirEntry) -> bool:
        if not (entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False)):
            return False
        if entry.name.endswith(".old") and not dest.exists():  # killed between the two
            os.rename(entry.path, dest)  # renames of the fallback: the old set is back
            return False
        shutil.rmtree(entry.path, ignore_errors=True)
        return True

    return remove_entries(dest.parent, leftover)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False when the
    system or file system has no such call."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_in(staged: Path, dest: Path) -> None:
    """Put the complete folder ``staged`` at ``dest`` and remove what was there: a reader (or a
    kill) sees the old folder or the new one, never a mix."""
    if dest.exists() or dest.is_symlink():
        if not _exchange(staged, dest):  # two renames; a kill between them leaves the old
            old = dest.parent / f"{staging_prefix(dest)}{secrets.token_hex(4)}.old"
            os.rename(dest, old)  # copy, which remove_staged_leftovers puts back
            os.rename(staged, dest)
            staged = old
        shutil.rmtree(staged, ignore_errors=True)
    else:
        os.rename(staged, dest)
    with contextlib.suppress(OSError):  # the renames themselves survive a power cut
        fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def staged_folder(dest: str | os.PathLike, *, keep_others: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dest``; when the block ends without an error it
    replaces ``dest`` as a whole (:func:`swap_in`), otherwise it is removed and ``dest`` stays
    as it was. ``keep_others``: the files of ``dest`` the block does not write stay (copied
    into the new folder first: a hard link would let a rewrite reach the old file). A full
    disk raises :class:`DiskFullError`."""
    dest = Path(dest)
    staged = dest.parent / f"{staging_prefix(dest)}{secrets.token_hex(4)}"
    try:
        os.mkdir(staged)  # 0777 less the umask, as any folder
        if keep_others and dest.is_dir():
            for entry in os.scandir(dest):
                target = staged / entry.name
                if entry.is_dir(follow_symlinks=False):
                    shutil.copytree(entry.path, target, symlinks=True)
                else:
                    shutil.copy2(entry.path, target, follow_symlinks=False)
        yield staged
        for p in staged.rglob("*"):  # what the block wrote with open(): mode as it gave
            if p.is_file() and not p.is_symlink():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        swap_in(staged, dest)
    except BaseException as exc:
        written = _size(staged)
        shutil.rmtree(staged, ignore_errors=True)
        if not is_disk_full(exc):
            raise
        # named as the user knows it: the file in dest, not in the temporary folder
        name = Path(getattr(exc, "path", None) or getattr(exc, "filename", None) or dest)
        shown = dest / name.relative_to(staged) if staged in name.parents else dest
        needed = exc.needed if isinstance(exc, DiskFullError) and exc.needed else written
        raise DiskFullError(shown, needed) from None


def _size(folder: Path) -> int | None:
    try:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    except OSError:
        return None


def write_files(folder: str | os.PathLike, files: dict[str, str | bytes]) -> None:
    """Write ``{name: text or bytes}`` into ``folder`` (a staged one: plain writes suffice),
    each file with the umask's mode."""
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        path = Path(folder) / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFullError(path, sum(len(c) for c in files.values())) from None
            raise
        finally:
            os.close(fd)


@contextlib.contextmanager
def names_full_disk(path: str | os.PathLike, needed: int | None = None) -> Iterator[None]:
    """A full disk inside the block -- an ENOSPC that a library's writer raised without naming
    its file (TensorBoard's event file, W&B's folder) -- becomes :class:`DiskFullError`
    naming ``path``; one already named passes as it is."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise DiskFullError(path, needed) from None
