"""The node's work on its spool: a complete series enhanced into the outbox, an outbox series sent on by C-STORE
with retries, each step finished before the files it started from are removed, so a restart repeats at most
the step it interrupted (and repeats it into the same UIDs: medivision.io.dicom_derived)."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pynetdicom import AE

from medivision.inference.pipeline import Upscaler, process
from medivision.io.handlers import jobs
from medivision.io.jobs import Notes, attempt
from medivision.io.outputs import plan
from medivision.node.spool import CLAIMED, TEMPORARY, Spool

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Destination:
    """Where derived series go: a DICOM node's AE title, host and port."""

    ae_title: str
    host: str
    port: int


@dataclass
class Worker:
    """Enhances the spool's complete series and sends the outbox to `destination`.

    A series is complete `quiet_seconds` after its last instance arrived. A send that fails is retried after
    `retry_seconds`, doubling up to `max_retry_seconds`, and the series stays in the outbox until every
    instance of it is stored.
    """

    spool: Spool
    upscaler: Upscaler
    intensity: str
    notes: Notes
    destination: Destination
    ae_title: str
    quiet_seconds: float = 5.0
    retry_seconds: float = 2.0
    max_retry_seconds: float = 300.0
    retry_at: dict[Path, tuple[float, float]] = field(default_factory=dict)  # outbox series: (when, wait)

    def step(self) -> None:
        """One round: enhance every complete series, then send every outbox series whose retry time has come."""
        for series in self.spool.complete(self.quiet_seconds):
            self.enhance(series)
        now = time.monotonic()
        for series in self.spool.waiting():
            when, wait = self.retry_at.get(series, (0.0, self.retry_seconds))
            if now >= when and not self.send(series):
                self.retry_at[series] = (now + wait, min(2 * wait, self.max_retry_seconds))

    def enhance(self, series: Path) -> None:
        """A complete incoming series into the outbox (written under a temporary name, then renamed), then the
        incoming series removed. A bad instance is skipped and counted, as enhance skips a bad file."""
        start, skipped = time.perf_counter(), []
        series = self.spool.claim(series)
        # one outbox folder per part of a series (a series sent in two associations is enhanced in two parts)
        target = self.spool.outbox / series.name.removeprefix(CLAIMED)
        staging = self.spool.outbox / f"{TEMPORARY}{target.name}"
        if target.exists():  # enhanced before a restart, which came before the claimed folder was removed
            shutil.rmtree(series)
            return
        shutil.rmtree(staging, ignore_errors=True)
        for partial in series.glob(f"{TEMPORARY}*"):  # an instance whose writer moved on to a new folder
            partial.unlink()
        todo = plan(series, staging, "dicom", uncertainty=bool(self.notes.uncertainty))
        written = []
        for job in jobs(todo, self.intensity, 2, "dicom", self.upscaler.model.scale, self.notes,
                        lambda source, reason: skipped.append(reason)):
            done = attempt(lambda source, reason: skipped.append(reason), [job.source],
                           lambda job=job: process(job, self.upscaler))
            if done is not None:
                written += done.written.outputs + done.written.maps
        if written:
            staging.rename(target)
        shutil.rmtree(series)
        logger.info("series %s: %d instances enhanced into %d files, %d skipped%s, in %.1f s", series.name,
                    len(todo.dicom), len(written), len(skipped), f" ({skipped[0]} ...)" if skipped else "",
                    time.perf_counter() - start)

    def send(self, series: Path) -> bool:
        """C-STORE every file of an outbox series to the destination; True (and the series removed) when all are
        stored, False to try again later."""
        files = sorted(series.rglob("*.dcm"))
        datasets = [dcmread(path) for path in files]
        ae = AE(ae_title=self.ae_title)
        for context in {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets}:
            ae.add_requested_context(*context)
        destination = self.destination
        association = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
        if not association.is_established:
            logger.warning("series %s: %s at %s:%d refused or did not answer; retrying later", series.name,
                           destination.ae_title, destination.host, destination.port)
            return False
        try:
            statuses = [association.send_c_store(dataset) for dataset in datasets]
        finally:
            association.release()
        failed = [status for status in statuses if not status or status.Status != 0x0000]
        if failed:
            logger.warning("series %s: %d of %d instances not stored by %s; retrying later", series.name,
                           len(failed), len(files), destination.ae_title)
            return False
        shutil.rmtree(series)
        self.retry_at.pop(series, None)
        logger.info("series %s: %d instances stored by %s", series.name, len(files), destination.ae_title)
        return True
