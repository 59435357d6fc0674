"""The locks under which the data folder's caches and generated corpora are built, and the
removal of what a killed build left behind.

A build writes into a temporary folder beside its target and renames it into place, so a
reader never sees half a cache. A build killed before the rename leaves that folder; the next
command that takes the same lock removes it: while a lock is held no other command builds
that target, so every temporary folder of the target is a leftover. The lock is an ``flock``
on a file of its own: the kernel drops it when its process dies, so a killed command never
leaves a stale lock (the lock file outlives it, harmlessly). Lock files are opened without
following a symbolic link.

numpy-free and torch-free: preprocessing imports this module.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lastexp.errors import DataError
from lastexp.io import remove_entries

LOCK_DIR = ".locks"  # below the cache folder: one lock file per cache
# _build_cache's temporary folders: ".tmp-<cache name>-<8 characters of mkdtemp>"
CACHE_TEMP = re.compile(r"\.tmp-(?P<name>.+)-[a-z0-9_]{8}")
# ensure_corpus's temporary folder: "raw.tmp-<pid>"
CORPUS_TEMP = re.compile(r"raw\.tmp-\d+")


def _open_lock(path: Path) -> tuple[int, bool]:
    """Open the lock file ``path``, creating it if absent, without following a link; returns
    the descriptor and whether this call created the file. A link or a file that cannot be
    opened is refused in one line (:class:`DataError`)."""
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666), True
            except FileExistsError:
                pass
            try:
                return os.open(path, flags), False
            except FileNotFoundError:
                continue  # removed in between by a refused command: create it
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"the lock file {path} is a symbolic link, which lastexp never "
                            "follows; remove the link") from None
        raise DataError(f"the lock file {path} cannot be opened ({exc.strerror or exc}); "
                        "choose a writable paths.data") from None


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_ino, st.st_dev) == (mine.st_ino, mine.st_dev)


@contextmanager
def held(path: Path, wait: bool = True, discard_on_error: bool = False) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created if absent); yields True. With
    ``wait=False`` a lock another process holds yields False at once instead of waiting.
    With ``discard_on_error``, a lock file this call created is removed again when the body
    raises (a refused command leaves the data folder as it found it)."""
    while True:
        fd, created = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        if _same_file(fd, path):
            break
        os.close(fd)  # locked a file that a refused command removed meanwhile: lock the new one
    try:
        yield True
    except BaseException:
        if discard_on_error and created:
            path.unlink(missing_ok=True)  # (waiters on this file see it gone and retry)
            for folder in (path.parent, path.parent.parent):
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    break
        raise
    finally:
        os.close(fd)  # releases the lock


def cache_lock_path(cache: Path) -> Path:
    """The lock file of the cache folder ``cache``: ``<cache parent>/.locks/<name>.lock``."""
    return cache.parent / LOCK_DIR / f"{cache.name}.lock"


def _remove(path: Path) -> bool:
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path)
    except FileNotFoundError:
        return False
    return True


def remove_cache_leftovers(cache_root: Path, own: str | None = None) -> list[str]:
    """Remove the temporary folders that killed builds left in ``cache_root``. The caller
    holds the lock of cache ``own`` (its leftovers go at once); any other cache's leftovers go
    when its lock is free (no command is building it). Returns the names removed."""

    def leftover(entry: os.DirEntry) -> bool:
        m = CACHE_TEMP.fullmatch(entry.name)
        if not m:
            return False
        name = m.group("name")
        if name == own:
            return _remove(cache_root / entry.name)
        with held(cache_lock_path(cache_root / name), wait=False) as free:
            return free and _remove(cache_root / entry.name)

    return remove_entries(cache_root, leftover)


def remove_corpus_leftovers(base: Path) -> list[str]:
    """Remove the ``raw.tmp-<pid>`` folders of killed corpus generations in ``base``; the
    caller holds ``base``'s corpus lock. Returns the names removed."""
    return remove_entries(
        base, lambda entry: bool(CORPUS_TEMP.fullmatch(entry.name)) and _remove(base / entry.name))
