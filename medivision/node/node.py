"""The node put together from its settings, checked before anything starts: the spool, the Storage SCP listening,
and the worker's loop."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass

from medivision.data.degradation_options import ForwardModel
from medivision.inference.ensemble import Ensemble
from medivision.inference.models import load_model
from medivision.inference.pipeline import Upscaler
from medivision.io.jobs import Notes
from medivision.node.scp import handlers, storage_scp
from medivision.node.spool import Spool
from medivision.node.worker import Destination, Worker

logger = logging.getLogger(__name__)
MAX_AE_TITLE = 16  # characters, by the standard


@dataclass
class Settings:
    """The node's settings (medivision/conf/serve.yaml)."""

    ae_title: str
    host: str
    port: int
    callers: list[str]
    allow_any_caller: bool
    destination: Destination
    spool: str
    quiet_seconds: float
    max_instance_mb: float
    max_spool_gb: float
    max_associations: int
    retry_seconds: float
    max_retry_seconds: float
    ckpt: str | None
    ensemble: Ensemble  # checked by serve.py, where the config enters
    uncertainty: bool
    threads: int


class Node:
    """A running node: `start()` checks the settings (ValueError naming the setting and the fix, before anything
    listens) and starts listening; `run(stop)` works the spool until `stop` is set; `close()` stops listening."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.server = None
        _check(settings)
        self.spool = Spool(settings.spool, int(settings.max_instance_mb * 2**20), int(settings.max_spool_gb * 2**30))
        model = load_model(settings.ckpt, threads=settings.threads)
        notes = Notes.of(model.scale, model.name, settings.uncertainty)
        upscaler = Upscaler(model, ForwardModel.of(model.degradation), ensemble=settings.ensemble)
        self.worker = Worker(self.spool, upscaler, model.intensity, notes, settings.destination, settings.ae_title,
                             settings.quiet_seconds, settings.retry_seconds, settings.max_retry_seconds)

    def start(self) -> None:
        s = self.settings
        ae = storage_scp(s.ae_title, [] if s.allow_any_caller else s.callers, s.max_associations)
        self.server = ae.start_server((s.host, s.port), block=False, evt_handlers=handlers(self.spool))
        logger.info("%s listening on %s:%d, sending to %s at %s:%d, spool %s", s.ae_title, s.host, s.port,
                    s.destination.ae_title, s.destination.host, s.destination.port, self.spool.root)

    def run(self, stop: threading.Event, interval: float = 0.5) -> None:
        while not stop.is_set():
            self.worker.step()
            stop.wait(interval)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None


def _check(s: Settings) -> None:
    """Each setting that cannot work, in one line, before the node starts."""
    for key, title in (("ae_title", s.ae_title), ("destination.ae_title", s.destination.ae_title)):
        if not title or len(title) > MAX_AE_TITLE or not title.isascii() or "\\" in title:
            raise ValueError(f"{key}={title!r} is not an AE title: 1 to {MAX_AE_TITLE} ASCII characters, no backslash")
    if s.callers and s.allow_any_caller:
        raise ValueError(f"callers={s.callers} and allow_any_caller=true: list the callers, or allow any, not both")
    if not s.callers and not s.allow_any_caller:
        raise ValueError("callers=[] refuses every sender: list the calling AE titles that may send (callers=[PACS]), "
                         "or pass allow_any_caller=true")
    try:
        socket.getaddrinfo(s.destination.host, s.destination.port)
    except (socket.gaierror, UnicodeError) as error:
        raise ValueError(f"destination.host={s.destination.host} does not resolve ({error}): pass the PACS's "
                         "host name or address") from error
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((s.host, s.port))
        except OSError as error:
            raise ValueError(f"port={s.port} on {s.host} cannot be listened on ({error.strerror}): another program "
                             "uses it; pass another port=") from error
