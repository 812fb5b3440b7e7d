"""W&B's local files: reading a run log (`run-<id>.wandb`) without a server, e.g. for offline runs, and credentials.

The file is W&B's record log: a 7-byte header (":W&B", magic 0xBEE1, version), then 32 KiB blocks of
records, each with a 7-byte header (CRC32C, length, type: full/first/middle/last) and a chunk of a
serialised `wandb_internal_pb2.Record`. Records that span blocks are split into first/middle/last chunks.
"""

import json
import netrc
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK_SIZE = 32 * 1024
HEADER_SIZE = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path) -> Iterator[wandb_internal_pb2.Record]:
    """Every record of a `.wandb` file, in order."""
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run log (.wandb): its header is {data[:4]!r}")
    position, pending = HEADER_SIZE, b""
    while position + HEADER_SIZE <= len(data):
        left_in_block = BLOCK_SIZE - position % BLOCK_SIZE
        if left_in_block < HEADER_SIZE:  # the writer pads block tails too short for a header
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + HEADER_SIZE])
        chunk = data[position + HEADER_SIZE:position + HEADER_SIZE + length]
        if len(chunk) < length:  # the writer is part-way through this record
            break
        position += HEADER_SIZE + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + chunk)
            pending = b""
            yield record
        elif kind in (FIRST, MIDDLE):
            pending += chunk
        else:  # zero padding at the end of a file still being written
            break


def read_run(path: str | Path) -> dict:
    """A run from its `.wandb` file: id, name, group, config, history rows and summary ({metric: value}),
    and runtime (seconds, None while the run has not finished)."""
    run = {"id": None, "name": None, "group": None, "config": {}, "history": [], "summary": {}, "runtime": None}
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(id=record.run.run_id, name=record.run.display_name, group=record.run.run_group)
        elif kind == "config":
            for item in record.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            run["history"].append(_items(record.history.item))
        elif kind == "summary":
            run["summary"].update(_items(record.summary.update))
        elif kind == "exit":
            run["runtime"] = record.exit.runtime
    return run


def _items(items) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def find_run_logs(directory: str | Path) -> list[Path]:
    """All `run-*.wandb` files below `directory`, sorted."""
    return sorted(Path(directory).rglob("run-*.wandb"))


def has_exit_record(log: Path) -> bool:
    return log.is_file() and any(record.WhichOneof("record_type") == "exit" for record in read_records(log))


def wandb_has_credentials() -> bool:
    """True when WANDB_API_KEY is set or ~/.netrc holds a key for api.wandb.ai (as `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
