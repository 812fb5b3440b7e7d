"""The DICOM node against a real PACS: an Orthanc on loopback ports, which knows the node as a modality. Real MR
files go into Orthanc over its REST API; Orthanc sends each series to the node; the derived series must come back
into Orthanc beside the original, one instance per source instance, with the tags of a derived series.

Orthanc is Debian's `orthanc` package; .ci/run installs it and sets MEDIVISION_REQUIRE_ORTHANC=1, so that there
its absence fails instead of skipping."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from medivision.node.node import Node
from medivision.node.worker import Destination
from tests.test_serve import free_port, settings

ORTHANC = shutil.which("Orthanc")
# real MR files of two series: single-frame JPEG 2000, and an Enhanced MR multi-frame object in JPEG-LS
FILES = ("MR_small_jp2klossless.dcm", "emri_small_jpeg_ls_lossless.dcm")

pytestmark = pytest.mark.skipif(ORTHANC is None and os.environ.get("MEDIVISION_REQUIRE_ORTHANC") != "1",
                                reason="Orthanc is not installed (apt-get install orthanc)")


class Orthanc:
    """An Orthanc server on loopback ports with its own storage, and its REST API."""

    def __init__(self, folder: Path, node_port: int):
        self.http, self.dicom = free_port(), free_port()
        folder.mkdir(parents=True, exist_ok=True)
        storage = str(folder / "db")
        config = {"Name": "MediVisionTest", "StorageDirectory": storage, "IndexDirectory": storage,
                  "HttpPort": self.http, "DicomPort": self.dicom, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
                  "AuthenticationEnabled": False, "Plugins": [], "DicomCheckCalledAet": False,
                  "DicomModalities": {"medivision": ["MEDIVISION", "127.0.0.1", node_port]}}
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.log = open(folder / "orthanc.log", "w")
        self.process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.get("/system")
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"Orthanc did not start: {(folder / 'orthanc.log').read_text()[-2000:]}")

    def request(self, path: str, data: bytes | None = None):
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", data=data),
                                    timeout=60) as response:
            return json.loads(response.read() or b"null")

    def get(self, path: str):
        return self.request(path)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def test_orthanc_sends_series_to_the_node_and_gets_the_derived_series_back_beside_them(tmp_path):
    node_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", node_port)
    stop = threading.Event()
    node = worker = None
    try:
        node = Node(settings(tmp_path, port=node_port, pacs_port=orthanc.dicom, callers=["ORTHANC"],
                             destination=Destination("ORTHANC", "127.0.0.1", orthanc.dicom)))
        node.start()
        worker = threading.Thread(target=node.run, args=(stop, 0.2))
        worker.start()
        uploaded = [orthanc.request("/instances", Path(get_testdata_file(name, download=False)).read_bytes())
                    for name in FILES]
        sources = [orthanc.get(f"/instances/{instance['ID']}")["ParentSeries"] for instance in uploaded]
        for series in sources:
            orthanc.request("/modalities/medivision/store", json.dumps(series).encode())
        deadline = time.monotonic() + 240
        while len(orthanc.get("/series")) < 2 * len(sources) and time.monotonic() < deadline:
            time.sleep(0.5)
        for series in sources:
            source = orthanc.get(f"/series/{series}")
            study = orthanc.get(f"/studies/{source['ParentStudy']}")
            derived = [orthanc.get(f"/series/{other}") for other in study["Series"] if other != series]
            assert len(derived) == 1, f"{len(derived)} derived series beside {source['MainDicomTags']}"
            assert len(derived[0]["Instances"]) == len(source["Instances"])  # one instance per source instance
            tags = orthanc.get(f"/instances/{derived[0]['Instances'][0]}/simplified-tags")
            original = orthanc.get(f"/instances/{source['Instances'][0]}/simplified-tags")
            assert tags["SeriesDescription"].startswith("SR 4x model estimate")
            assert tags["ImageType"].startswith("DERIVED")
            assert int(tags["Rows"]) == 4 * int(original["Rows"])
            assert int(tags["SeriesNumber"]) == int(original.get("SeriesNumber") or 0) + 1000
    finally:
        stop.set()
        if worker is not None:
            worker.join()
        if node is not None:
            node.close()
        orthanc.stop()
    assert not list(node.spool.root.rglob("*.dcm"))
