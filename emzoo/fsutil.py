"""Writing folders so that nothing is lost: a result appears whole or not at all."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from emzoo.errors import ConfigError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write_fn) -> Path:
    """Write one file through ``write_fn(tmp_path)`` into a hidden sibling, then rename it into
    place: readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the hidden name stays short: an input named with 245 characters (legal) still gets a temp file
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:64]}.", suffix=path.suffix[:16], dir=path.parent)
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from colleagues
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def check_new_folder(out: str | Path, name: str = "out", *, replace: bool = False) -> Path:
    """``out`` as a path, if it may become a new folder: checked before any long work starts."""
    if not str(out).strip():
        raise ConfigError(f"{name} {str(out)!r}: expected a folder path")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{name} {out}: is a file; expected a new folder (nothing was overwritten)")
    if not replace and out.exists() and any(out.iterdir()):
        raise ConfigError(f"{name} {out}: exists and is not empty; choose a new folder (nothing was overwritten)")
    return out


@contextmanager
def new_folder(out: str | Path, name: str = "out", *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``out`` to fill; it becomes ``out`` only if the block
    succeeds. ``out`` must not exist or be empty (nothing is ever overwritten) unless ``replace``,
    which swaps a previous ``out`` for the new one whole."""
    out = check_new_folder(out, name, replace=replace)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name[:64]}.", dir=out.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 likewise
    except OSError as e:
        raise ConfigError(f"{name} {out}: cannot create it ({e.strerror})") from None
    try:
        yield tmp
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def cache_root() -> Path:
    """emzoo's own cache (simulated data, ONNX Runtime graphs): ``$EMZOO_CACHE`` or ~/.cache/emzoo."""
    return Path(os.environ.get("EMZOO_CACHE", Path.home() / ".cache" / "emzoo"))


def sha256_file(path: str | Path) -> str:
    """The file's sha256, read once per version of the file: loading a zoo name checks the
    registry's pin and then the folder's own pin on the same weights file."""
    stat = os.stat(path)
    return _sha256(os.path.realpath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256(path: str, inode: int, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
