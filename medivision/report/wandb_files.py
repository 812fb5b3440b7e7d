"""W&B's local files: a run log (`run-<id>.wandb`) read without a server, e.g. for offline runs, and credentials.

Run logs are read with W&B's own tool, `wandb leet inspect --json`, which prints each record of the log as
one JSON object ({"num", "type", <type>: {...}}) and works offline. W&B's public API (wandb.Api) reads runs
from the server only, so it cannot read an offline run that has not been synced.
"""

import json
import netrc
import os
import subprocess
import sys
from pathlib import Path


def read_records(path: str | Path) -> list[dict]:
    """Every record of a `.wandb` file, in order, as `wandb leet inspect --json` prints them. A file that the
    run is still writing gives the records written so far."""
    command = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()] if not result.returncode else []
    if not records or records[0].get("type") != "header":
        said = result.stderr.strip().splitlines()
        raise ValueError(f"{path} is not a W&B run log (.wandb) that `wandb leet inspect` can read: "
                         f"{said[-1] if said else 'no records'}")
    return records


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


def has_exit_record(log: Path) -> bool:
    return log.is_file() and any(record["type"] == "exit" for record in read_records(log))


def wandb_has_credentials() -> bool:
    """True when WANDB_API_KEY is set or ~/.netrc holds a key for api.wandb.ai (as `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
