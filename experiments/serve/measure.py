"""Measures the DICOM node (experiments/serve/README.md): instances/s received while it enhances, series/min
enhanced, and the latency from the last instance of a 20-slice 256x256 series received to its derived series
stored in a real Orthanc. Run from the repository root on a quiet machine, with Orthanc installed:

    PYTHONPATH=. .venv/bin/python experiments/serve/measure.py /tmp/serve-measure

It writes OUT/results.json.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage

from medivision.node.node import Node
from medivision.node.worker import Destination
from tests.clinic import write_dicom_series
from tests.test_orthanc import Orthanc
from tests.test_serve import free_port, settings

OUT = Path(sys.argv[1]).resolve()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    node_port = free_port()
    orthanc = Orthanc(OUT / "orthanc", node_port)
    node = Node(settings(OUT, port=node_port, pacs_port=orthanc.dicom, callers=["ORTHANC", "SCANNER"], threads=2,
                         destination=Destination("ORTHANC", "127.0.0.1", orthanc.dicom), quiet_seconds=3600.0))
    node.start()
    stop = threading.Event()
    worker = threading.Thread(target=node.run, args=(stop, 0.1))
    worker.start()
    results = {}
    try:
        # latency: Orthanc sends a 20-slice 256x256 series; from its last instance in the node to the derived
        # series' last instance stored in Orthanc
        paths = write_dicom_series(OUT / "series256", count=20, size=(256, 256))
        series = [orthanc.request("/instances", path.read_bytes())["ParentSeries"] for path in paths][0]
        study = orthanc.get(f"/series/{series}")["ParentStudy"]
        orthanc.request("/modalities/medivision/store", json.dumps(series).encode())
        received = time.time()  # the store call returns when Orthanc's association is released
        while len(orthanc.get(f"/studies/{study}/instances")) < 40:
            time.sleep(0.1)
        results["latency_s_20x256x256_ensemble1"] = round(time.time() - received, 1)
        # throughput: 10 series of 20 64x64 slices sent back to back by one scanner while the node enhances them
        batches = [write_dicom_series(OUT / f"series64_{index}", count=20, size=(64, 64)) for index in range(10)]
        datasets = [[pydicom.dcmread(path) for path in batch] for batch in batches]
        start = time.perf_counter()
        for batch in datasets:
            ae = AE(ae_title="SCANNER")
            ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
            association = ae.associate("127.0.0.1", node_port, ae_title="MEDIVISION")
            for dataset in batch:
                association.send_c_store(dataset)
            association.release()
        sent = time.perf_counter() - start
        results["received_instances_per_s_while_enhancing"] = round(200 / sent, 1)
        while len(orthanc.get("/series")) < 2 + 10:  # the 256 series and its derived one, and 10 derived series
            time.sleep(0.2)
        results["series_per_min_20x64x64_ensemble1"] = round(10 / ((time.perf_counter() - start) / 60), 1)
    finally:
        stop.set()
        worker.join()
        node.close()
        orthanc.stop()
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
