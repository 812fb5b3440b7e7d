"""W&B's local files: a run log (`run-<id>.wandb`) read without a server, e.g. for offline runs, and credentials.

Run logs are read with W&B's own tool, `wandb leet inspect --json` (wandb 0.31 and later), which prints each
record of the log as one JSON object ({"num", "type", <type>: {...}}) and works offline. The records are
streamed, so a reader that stops early (run_group) stops the tool too. W&B's public API (wandb.Api) reads runs
from the server only, so it cannot read an offline run that has not been synced.
"""

import json
import netrc
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from importlib.metadata import version
from pathlib import Path

LEET_VERSION = "0.31"  # the first wandb release whose `wandb leet inspect` prints JSON (--json)
LEET_INSPECT = ("-m", "wandb", "leet", "inspect", "--json")  # run with this interpreter
READ_TIMEOUT = 300.0  # seconds; one log takes about a second


class WandbTooOld(ValueError):
    """The installed wandb has no `wandb leet inspect --json`."""


def iter_records(path: str | Path, timeout: float = READ_TIMEOUT, follow: bool = False) -> Iterator[dict]:
    """The records of a `.wandb` file, in order, as `wandb leet inspect --json` prints them, one at a time.

    A file that the run is still writing gives the records written so far; with `follow`, the records
    written until the run exits, or until `timeout` seconds pass without a write. Closing the iterator early
    stops the tool. Raises ValueError naming the path for a file that is not a run log, output that is not
    JSON, a tool that runs past `timeout` seconds, and a wandb without `leet inspect --json`.
    """
    options = ("--follow", "--idle-timeout", f"{max(1, round(timeout))}s") if follow else ()
    command = [sys.executable, *LEET_INSPECT, *options, str(path)]
    timed_out = threading.Event()
    with tempfile.TemporaryFile("w+") as errors, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors,
                                                                 text=True) as process:
        timer = threading.Timer(timeout, lambda: (timed_out.set(), process.kill()))
        timer.start()
        try:
            count = yield from _parse(path, process.stdout)
            process.wait()
        finally:
            timer.cancel()
            process.kill()  # a no-op once it has exited; stops it when the reader stopped early
        if timed_out.is_set():
            raise ValueError(f"{path}: `wandb leet inspect` did not finish reading it within {timeout:.0f} s")
        if process.returncode or not count:
            errors.seek(0)
            _refuse(path, errors.read().strip().splitlines())


def _parse(path: str | Path, lines) -> Iterator[dict]:
    """Yields each JSON line as a dict; returns how many. The first must be the log's header."""
    count = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: line {number} of `wandb leet inspect --json` is not JSON ({error})") from None
        if not count and record.get("type") != "header":
            _refuse(path, [f"its first record is {record.get('type')!r}, not the header"])
        count += 1
        yield record
    return count


def _refuse(path: str | Path, said: list[str]) -> None:
    if any("No such command" in line or "No such option" in line for line in said):
        raise WandbTooOld(f"reading W&B run logs needs wandb>={LEET_VERSION} (`wandb leet inspect --json`); "
                         f"wandb {version('wandb')} is installed: pip install 'wandb>={LEET_VERSION}'")
    raise ValueError(f"{path} is not a W&B run log (.wandb) that `wandb leet inspect` can read: "
                     f"{said[-1] if said else 'no records'}")


def read_records(path: str | Path) -> list[dict]:
    """Every record of a `.wandb` file, in order (iter_records)."""
    return list(iter_records(path))


def run_group(path: str | Path) -> str | None:
    """The W&B group of the run in a `.wandb` file, read from its run record near the start; the rest of
    the log is not read."""
    with closing(iter_records(path)) as records:
        return next(((record.get("run") or {}).get("run_group") for record in records if record["type"] == "run"),
                    None)


def read_run(path: str | Path) -> dict:
    """A run from its `.wandb` file: id, name, group, job_type, config (nested, as logged), history rows and
    summary ({metric: value}; a logged media object or table appears as its fields, e.g. `val/samples.captions`),
    and runtime (seconds, None while the run has not finished)."""
    run = {"id": None, "name": None, "group": None, "job_type": None, "config": {}, "history": [], "summary": {},
           "runtime": None}
    for record in read_records(path):
        kind = record["type"]
        body = record.get(kind) or {}
        if kind == "run":
            run.update(id=body.get("run_id"), name=body.get("display_name"), group=body.get("run_group"),
                       job_type=body.get("job_type"))
            run["config"].update((body.get("config") or {}).get("update") or {})
        elif kind == "config":
            run["config"].update(body.get("update") or {})
        elif kind == "history":
            run["history"].append(body.get("item") or {})
        elif kind == "summary":
            run["summary"].update(body.get("update") or {})
        elif kind == "exit":
            run["runtime"] = body.get("runtime")
    run["config"].pop("_wandb", None)  # W&B's own bookkeeping, not the run's settings
    return run


def find_run_logs(directory: str | Path) -> list[Path]:
    """All `run-*.wandb` files below `directory`, sorted."""
    return sorted(Path(directory).rglob("run-*.wandb"))


def wait_for_exit_record(log: Path, timeout: float) -> bool:
    """True once the run log `log` holds its exit record; False when `timeout` seconds pass first or the log
    cannot be read. A log not yet created, empty or partly written is a run not yet finished: it is followed
    (one `wandb leet inspect --follow`) until the exit record is written."""
    deadline = time.monotonic() + timeout
    while not log.is_file():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    try:
        with closing(iter_records(log, max(deadline - time.monotonic(), 1.0), follow=True)) as records:
            return any(record["type"] == "exit" for record in records)
    except ValueError:
        return False


def wandb_has_credentials() -> bool:
    """True when WANDB_API_KEY is set or ~/.netrc holds a key for api.wandb.ai (as `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
