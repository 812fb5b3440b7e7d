"""The node's spool: each received instance is on disk before its sender hears that it arrived, and each series'
state is a folder, so that a crash loses nothing and a restart picks up where it stopped.

    <root>/incoming/<series>/<instance>.dcm   received; waits until its series is complete
    <root>/incoming/<series>/released         the association that sent it was released (the series is complete)
    <root>/incoming/claimed-<series>.<n>/      taken by the worker: what arrives from now on starts a new folder
    <root>/outbox/<series>.<n>/<file>.dcm      the derived series (and uncertainty series), waiting to be sent

Folder and file names are hashes of the UIDs, never a UID or any other tag as received. Every file is written
under a temporary name, synced and renamed into place, so a file in the spool is always whole; a temporary
file left by a crash is ignored and removed on start.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from io import BytesIO
from pathlib import Path

from pydicom import Dataset, dcmwrite

TEMPORARY = ".tmp-"
RELEASED = "released"
CLAIMED = "claimed-"


def spool_key(*uids: str) -> str:
    """A file-name-safe name for what `uids` identify: 32 hex digits of their SHA-256."""
    return hashlib.sha256("\0".join(uids).encode()).hexdigest()[:32]


class Spool:
    """The spool under `root` (see the module docstring), with limits on one instance and on the whole spool
    (bytes). Raises ValueError naming the folder when it cannot be written."""

    def __init__(self, root: str | Path, max_instance_bytes: int, max_total_bytes: int):
        self.root = Path(root).expanduser()
        self.incoming, self.outbox = self.root / "incoming", self.root / "outbox"
        self.max_instance_bytes, self.max_total_bytes = max_instance_bytes, max_total_bytes
        try:
            for folder in (self.incoming, self.outbox):
                folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.root / "writable", b"")
        except OSError as error:
            raise ValueError(f"spool={self.root} is not a writable folder ({error.strerror}): pass spool= a folder "
                             "this user can write") from error
        for stale in list(self.root.rglob(f"{TEMPORARY}*")):  # a file or a staged series a crash left half-written
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()

    def release(self, series: Path) -> None:
        """Mark an incoming series complete: the association that sent it has been released."""
        if series.is_dir():
            write_atomically(series / RELEASED, b"")

    def store(self, dataset: Dataset) -> Path:
        """Write a received instance (with its file meta) into its series' folder; ValueError when it is larger
        than one instance may be or the spool is full."""
        buffer = BytesIO()
        dcmwrite(buffer, dataset, enforce_file_format=True)
        data = buffer.getvalue()
        if len(data) > self.max_instance_bytes:
            raise ValueError(f"an instance of {len(data)} bytes is over max_instance_mb")
        if self.used() + len(data) > self.max_total_bytes:
            raise ValueError(f"the spool {self.root} is full (max_spool_gb)")
        series = self.incoming / spool_key(str(dataset.get("StudyInstanceUID", "")),
                                           str(dataset.get("SeriesInstanceUID", "")))
        path = series / f"{spool_key(str(dataset.SOPInstanceUID))}.dcm"
        while True:
            series.mkdir(exist_ok=True)
            try:
                write_atomically(path, data)
                return path
            except FileNotFoundError:  # the worker claimed the folder meanwhile: the instance goes to a new one
                continue

    def claim(self, series: Path) -> Path:
        """Take a complete incoming series for the worker: renamed (atomically), so that instances arriving from
        now on start a folder of their own; a folder claimed before a restart is returned as it is."""
        if series.name.startswith(CLAIMED):
            return series
        claimed = series.with_name(f"{CLAIMED}{series.name}.{time.time_ns()}")
        series.rename(claimed)
        return claimed

    def used(self) -> int:
        """Bytes in the spool. Folders and files that another thread renames or removes during the count (the
        worker claims and finishes series meanwhile) are not counted: os.walk skips a folder it cannot list."""
        total = 0
        for folder, _, names in os.walk(self.root):
            for name in names:
                if name.endswith(".dcm"):
                    try:
                        total += os.stat(os.path.join(folder, name)).st_size
                    except FileNotFoundError:
                        pass
        return total

    def complete(self, quiet_seconds: float) -> list[Path]:
        """The incoming series folders whose association was released since their last instance, or that received
        nothing for `quiet_seconds`; oldest first."""
        now, ready = time.time(), []
        for series in self.incoming.iterdir():
            times = [path.stat().st_mtime for path in series.glob("*.dcm")]
            released = (series / RELEASED).is_file() and (series / RELEASED).stat().st_mtime >= max(times, default=0)
            if series.name.startswith(CLAIMED) or times and (released or now - max(times) >= quiet_seconds):
                ready.append((max(times, default=0), series))
        return [series for _, series in sorted(ready)]

    def waiting(self) -> list[Path]:
        """The outbox's series folders, each a derived series (with its uncertainty series) to send."""
        return sorted(path for path in self.outbox.iterdir() if path.is_dir() and not path.name.startswith("."))


def write_atomically(path: Path, data: bytes) -> None:
    """`data` into `path`: a temporary file beside it, synced, renamed over it, and the folder synced."""
    temporary = path.with_name(f"{TEMPORARY}{path.name}.part")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
