"""Writing a directory atomically: build it beside the target, then rename it into place.

A reader sees the old directory or the new one, never a half-written one. Replacing an
existing directory uses Linux's ``renameat2(RENAME_EXCHANGE)`` (one atomic swap) where the
kernel and file system offer it, else two renames (old out of the way, new in): the target
is then briefly absent, but never partial.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from optimizer.errors import UsageError

log = logging.getLogger(__name__)

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@contextlib.contextmanager
def atomic_directory(
    target: str | os.PathLike[str], replaceable: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Yields an empty temporary sibling of ``target``; on a clean exit it becomes ``target``.

    On any exception (KeyboardInterrupt included) the temporary directory is removed and an
    existing ``target`` is left untouched.

    Args:
        target: The directory to create or replace.
        replaceable: Says whether an existing non-empty ``target`` may be replaced; when it
            says no, a ``UsageError`` is raised before anything is written.
    """
    target = Path(target).absolute()
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise UsageError(f"{target}: exists and is not a directory")
        if any(target.iterdir()) and replaceable is not None and not replaceable(target):
            raise UsageError(
                f"{target}: refusing to replace a directory that is not a compiled module; "
                "remove it or choose another output directory"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _make_temp_dir(target)
    try:
        yield tmp
        fsync_tree(tmp)
        replace_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_directory(src: Path, dst: Path) -> None:
    """Moves directory ``src`` to ``dst``, replacing ``dst`` if it exists."""
    try:
        os.rename(src, dst)  # no dst yet (or an empty one): atomic
        _fsync_dir(dst.parent)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if _exchange(src, dst):
        # src now holds the old contents
        _fsync_dir(dst.parent)
        shutil.rmtree(src, ignore_errors=True)
        return
    old = _make_temp_dir(dst, "old")
    os.rmdir(old)
    os.rename(dst, old)
    try:
        os.rename(src, dst)
    except BaseException:
        os.rename(old, dst)
        raise
    _fsync_dir(dst.parent)
    shutil.rmtree(old, ignore_errors=True)


def fsync_tree(root: Path) -> None:
    """Flushes every file and directory under ``root`` to disk (before it is renamed in)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _make_temp_dir(target: Path, tag: str = "tmp") -> Path:
    # Not tempfile.mkdtemp: its 0700 mode would stick to the finished directory.
    for _ in range(100):
        path = target.parent / f".{target.name}.{tag}-{secrets.token_hex(4)}"
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swaps two paths with renameat2; False where that is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    log.debug("renameat2 exchange unavailable (%s): two renames", os.strerror(ctypes.get_errno()))
    return False


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories
    finally:
        os.close(fd)
