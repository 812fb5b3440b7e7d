"""`medivision-serve destination.ae_title=PACS destination.host=HOST destination.port=PORT callers=[PACS]`: a DICOM
node. A scanner or PACS sends it MR series (C-STORE); each instance is in the spool before success is answered.
A series is enhanced once it is complete (its association released, or quiet_seconds after its last instance),
and the derived series (with ensemble=8 uncertainty=true, its uncertainty series too) is stored at the
destination, retried until it is. Unfinished work is picked up after a restart. Runs on the core install (ONNX
Runtime, no torch)."""

from __future__ import annotations

import threading

import hydra
from omegaconf import DictConfig, OmegaConf

from medivision.inference.ensemble import check_ensemble
from medivision.io.command_line import command_line
from medivision.io.errors import one_line_errors
from medivision.node.node import Node, Settings
from medivision.node.worker import Destination


@command_line("serve", __doc__)
@hydra.main(version_base="1.3", config_path="conf", config_name="serve")
@one_line_errors("medivision.serve")
def main(cfg: DictConfig) -> None:
    node = Node(settings(cfg))
    node.start()
    try:
        node.run(threading.Event())
    except KeyboardInterrupt:
        pass
    finally:
        node.close()


def settings(cfg: DictConfig) -> Settings:
    """The node's settings from medivision/conf/serve.yaml."""
    destination = cfg.destination
    missing = [f"destination.{key}=" for key in ("ae_title", "host", "port") if OmegaConf.is_missing(destination, key)]
    if missing:
        raise ValueError(f"{', '.join(missing)} missing: the PACS that derived series go to, e.g. "
                         "destination.ae_title=PACS destination.host=pacs.local destination.port=4242")
    values = OmegaConf.to_container(cfg, resolve=True)
    values["ensemble"] = check_ensemble(values["ensemble"], values["uncertainty"])
    values["destination"] = Destination(**values["destination"])
    values["callers"] = [str(caller) for caller in values["callers"]]
    return Settings(**values)


if __name__ == "__main__":
    main()
