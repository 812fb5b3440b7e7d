"""The DICOM node against real DICOM peers (pynetdicom over loopback TCP): C-ECHO, refused callers and SOP classes,
a series in and its derived series out, a destination that is down and then up, a restart with work in the
spool, and settings that cannot work refused in one line before anything listens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, Verification

from medivision.node.node import Node, Settings
from medivision.node.spool import Spool
from medivision.node.worker import Destination
from tests.clinic import write_dicom_series
from tests.test_bad_input import run_command
from tests.training import REPO


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Pacs:
    """A storage SCP standing in for the PACS the node sends to: it keeps what it receives."""

    def __init__(self, port: int):
        self.received: list[pydicom.Dataset] = []
        ae = AE(ae_title="PACS")
        ae.add_supported_context(MRImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        self.server = ae.start_server(("127.0.0.1", port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._store)])

    def _store(self, event) -> int:
        self.received.append(event.dataset)
        return 0x0000

    def close(self) -> None:
        self.server.shutdown()


def settings(tmp_path: Path, port: int, pacs_port: int, **changes) -> Settings:
    values = dict(ae_title="MEDIVISION", host="127.0.0.1", port=port, callers=["SCANNER"], allow_any_caller=False,
                  destination=Destination("PACS", "127.0.0.1", pacs_port), spool=str(tmp_path / "spool"),
                  quiet_seconds=0.0, max_instance_mb=16, max_spool_gb=1, max_associations=8, retry_seconds=0.0,
                  max_retry_seconds=0.0, ckpt=None, ensemble=1, uncertainty=False, threads=1)
    return Settings(**{**values, **changes})


def send(port: int, paths: list[Path], caller: str = "SCANNER") -> list[int]:
    """C-STORE the files from a scanner's AE; their statuses."""
    ae = AE(ae_title=caller)
    ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
    association = ae.associate("127.0.0.1", port, ae_title="MEDIVISION")
    assert association.is_established
    statuses = [association.send_c_store(pydicom.dcmread(path)).Status for path in paths]
    association.release()
    return statuses


@pytest.fixture
def node(tmp_path):
    started = []

    def start(**changes) -> Node:
        running = Node(settings(tmp_path, **changes))
        running.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


def test_echo_and_the_refusals_of_unknown_callers_and_sop_classes(node, tmp_path):
    port = free_port()
    node(port=port, pacs_port=free_port())
    ae = AE(ae_title="SCANNER")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    association = ae.associate("127.0.0.1", port, ae_title="MEDIVISION")
    assert association.is_established
    assert association.send_c_echo().Status == 0x0000
    assert [context.abstract_syntax for context in association.rejected_contexts] == [CTImageStorage]
    association.release()
    stranger = AE(ae_title="STRANGER")
    stranger.add_requested_context(Verification)
    refused = stranger.associate("127.0.0.1", port, ae_title="MEDIVISION")
    assert refused.is_rejected and not refused.is_established


def test_a_series_goes_in_and_its_derived_series_comes_out_once(node, tmp_path):
    port, pacs = free_port(), Pacs(free_port())
    try:
        running = node(port=port, pacs_port=pacs.server.server_address[1])
        sources = write_dicom_series(tmp_path / "series", count=3)
        assert send(port, sources) == [0x0000] * 3
        assert len(list(running.spool.incoming.rglob("*.dcm"))) == 3  # on disk before success was answered
        running.worker.step()
        running.worker.step()
    finally:
        pacs.close()
    originals = {pydicom.dcmread(path).SOPInstanceUID: pydicom.dcmread(path) for path in sources}
    assert len(pacs.received) == 3
    for derived in pacs.received:
        source = originals[derived.SourceImageSequence[0].ReferencedSOPInstanceUID]
        assert derived.SeriesInstanceUID != source.SeriesInstanceUID and derived.Rows == 4 * source.Rows
        assert derived.StudyInstanceUID == source.StudyInstanceUID
        assert derived.SeriesDescription.startswith("SR 4x model estimate")
    assert len({derived.SeriesInstanceUID for derived in pacs.received}) == 1
    assert not list(running.spool.root.rglob("*.dcm"))  # nothing left behind


def test_a_destination_that_is_down_gets_the_series_once_it_is_up(node, tmp_path):
    port, pacs_port = free_port(), free_port()
    running = node(port=port, pacs_port=pacs_port)
    send(port, write_dicom_series(tmp_path / "series", count=2))
    running.worker.step()  # enhanced; the send fails: nobody listens
    assert len(running.spool.waiting()) == 1
    pacs = Pacs(pacs_port)
    try:
        running.worker.step()
        running.worker.step()
    finally:
        pacs.close()
    assert len(pacs.received) == 2 and not running.spool.waiting()


def test_a_restart_picks_up_the_series_left_in_the_spool(node, tmp_path):
    port, pacs = free_port(), Pacs(free_port())
    try:
        first = node(port=port, pacs_port=pacs.server.server_address[1])
        send(port, write_dicom_series(tmp_path / "series", count=2))
        first.close()  # stops before enhancing anything, as a crash would
        again = node(port=free_port(), pacs_port=pacs.server.server_address[1])
        again.worker.step()
        again.worker.step()
    finally:
        pacs.close()
    assert len(pacs.received) == 2


@pytest.mark.parametrize("changes, message", [
    ({"ae_title": "A_TITLE_OF_17_CHAR"}, "ae_title='A_TITLE_OF_17_CHAR' is not an AE title: 1 to 16 ASCII characters"),
    ({"destination": Destination("PACS", "no-such-host.invalid", 104)},
     "destination.host=no-such-host.invalid does not resolve"),
    ({"callers": []}, "callers=[] refuses every sender"),
])
def test_settings_that_cannot_work_are_refused_before_anything_listens(changes, message, tmp_path):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Node(settings(tmp_path, port=free_port(), pacs_port=104, **changes))


def test_a_port_in_use_and_an_unwritable_spool_are_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ValueError, match=r"port=\d+ on 127.0.0.1 cannot be listened on .*pass another port="):
            Node(settings(tmp_path, port=busy.getsockname()[1], pacs_port=104))
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(ValueError, match="is not a writable folder"):
        Node(settings(tmp_path, port=free_port(), pacs_port=104, spool=str(tmp_path / "a_file" / "spool")))


def test_the_command_says_what_is_missing_in_one_line(tmp_path):
    result = run_command(["medivision.serve", "callers=[SCANNER]", f"spool={tmp_path / 'spool'}"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == ("medivision.serve: destination.ae_title=, destination.host=, destination.port= "
                                     "missing: the PACS that derived series go to, e.g. destination.ae_title=PACS "
                                     "destination.host=pacs.local destination.port=4242")
    assert run_command(["medivision.serve", "--help"], tmp_path).stdout.startswith("`medivision-serve")


def test_a_released_association_completes_its_series_without_waiting(node, tmp_path):
    port, pacs = free_port(), Pacs(free_port())
    try:
        running = node(port=port, pacs_port=pacs.server.server_address[1], quiet_seconds=3600.0)
        send(port, write_dicom_series(tmp_path / "series", count=2))  # send() releases the association
        deadline = time.monotonic() + 30
        while len(pacs.received) < 2 and time.monotonic() < deadline:
            running.worker.step()
    finally:
        pacs.close()
    assert len(pacs.received) == 2


@pytest.mark.slow  # 160 instances in, 160 derived instances out
def test_eight_senders_at_once_all_arrive_and_nothing_is_left_in_the_spool(node, tmp_path):
    port, pacs = free_port(), Pacs(free_port())
    try:
        running = node(port=port, pacs_port=pacs.server.server_address[1], quiet_seconds=3600.0)
        series = [write_dicom_series(tmp_path / f"series{index}", count=20, size=(16, 12)) for index in range(8)]
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda paths: send(port, paths, caller="SCANNER"), series))
        assert all(status == [0x0000] * 20 for status in statuses)
        deadline = time.monotonic() + 300
        while len(pacs.received) < 160 and time.monotonic() < deadline:
            running.worker.step()
    finally:
        pacs.close()
    assert len(pacs.received) == 160 and len({derived.SOPInstanceUID for derived in pacs.received}) == 160
    assert len({derived.SeriesInstanceUID for derived in pacs.received}) == 8
    assert not list(running.spool.root.rglob("*.dcm"))


@pytest.mark.slow  # two node processes
def test_a_node_killed_in_the_middle_of_a_series_delivers_it_complete_and_once_after_a_restart(tmp_path):
    port, pacs = free_port(), Pacs(free_port())
    command = [sys.executable, "-m", "medivision.serve", f"port={port}", "host=127.0.0.1", "callers=[SCANNER]",
               f"spool={tmp_path / 'spool'}", "quiet_seconds=5", "destination.ae_title=PACS",
               "destination.host=127.0.0.1", f"destination.port={pacs.server.server_address[1]}"]
    sources = write_dicom_series(tmp_path / "series", count=10)

    def started() -> subprocess.Popen:
        process = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return process
            time.sleep(0.2)
        process.kill()
        raise AssertionError(f"the node did not start listening (exit code {process.poll()})")

    try:
        first = started()
        send(port, sources[:5])
        first.send_signal(signal.SIGKILL)  # within the quiet time: nothing of the series is enhanced yet
        first.wait()
        second = started()
        send(port, sources[5:])
        deadline = time.monotonic() + 120
        while len(pacs.received) < 10 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(7)  # anything sent twice would arrive in this time
        second.terminate()
        second.wait()
    finally:
        pacs.close()
    assert len(pacs.received) == 10 and len({derived.SOPInstanceUID for derived in pacs.received}) == 10
    assert len({derived.SeriesInstanceUID for derived in pacs.received}) == 1


def test_a_bad_instance_is_skipped_and_counted_and_the_rest_of_its_series_arrives(node, tmp_path, caplog):
    port, pacs = free_port(), Pacs(free_port())
    paths = write_dicom_series(tmp_path / "series", count=3)
    broken = pydicom.dcmread(paths[2])
    del broken.PixelData  # an MR instance the node receives but cannot enhance
    broken.save_as(paths[2])
    try:
        running = node(port=port, pacs_port=pacs.server.server_address[1])
        with caplog.at_level("INFO", logger="medivision.node.worker"):
            assert send(port, paths) == [0x0000] * 3
            running.worker.step()
            running.worker.step()
    finally:
        pacs.close()
    assert len(pacs.received) == 2
    (line,) = [record.getMessage() for record in caplog.records if "instances enhanced" in record.getMessage()]
    assert "3 instances enhanced into 2 files, 1 skipped (" in line and "no pixel data" in line.lower()


def test_instances_arriving_while_their_series_is_taken_are_enhanced_too(node, tmp_path):
    """The worker takes a series (claims its folder) while its sender still sends: nothing may be lost."""
    port, pacs = free_port(), Pacs(free_port())
    paths = write_dicom_series(tmp_path / "series", count=3)
    try:
        running = node(port=port, pacs_port=pacs.server.server_address[1], quiet_seconds=3600.0)
        send(port, paths[:2])
        (series,) = [path for path in running.spool.incoming.iterdir()]
        running.spool.claim(series)  # as the worker does when it starts on a series
        send(port, paths[2:])  # the same series: a new folder
        for _ in range(3):
            running.worker.step()
    finally:
        pacs.close()
    assert len(pacs.received) == 3 and len({derived.SeriesInstanceUID for derived in pacs.received}) == 1
    assert not list(running.spool.root.rglob("*.dcm"))


def test_the_spool_size_skips_a_series_folder_claimed_while_it_counts(tmp_path, monkeypatch):
    spool = Spool(tmp_path / "spool", max_instance_bytes=1000, max_total_bytes=10_000)
    for series, size in (("a", 10), ("b", 100)):
        (spool.incoming / series).mkdir(parents=True)
        (spool.incoming / series / "1.dcm").write_bytes(b"x" * size)
    listed = os.scandir

    def scandir(path):  # series "b" is renamed by the worker after its parent was listed
        if Path(path).name == "b":
            raise FileNotFoundError(path)
        return listed(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert spool.used() == 10
