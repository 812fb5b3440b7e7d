"""The node's Storage SCP (pynetdicom): it answers C-ECHO, accepts the MR storage classes that enhance reads in
the transfer syntaxes it decodes, only from the calling AE titles it is told, and answers a C-STORE with
success only once the instance is in the spool."""

from __future__ import annotations

import logging
import time

from pydicom import uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    EnhancedMRImageStorage,
    MRImageStorage,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    SecondaryCaptureImageStorage,
    Verification,
)

from medivision.node.spool import Spool

logger = logging.getLogger(__name__)

STORAGE_CLASSES = (MRImageStorage, EnhancedMRImageStorage, SecondaryCaptureImageStorage,
                   MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
                   MultiFrameGrayscaleWordSecondaryCaptureImageStorage)
# What enhance decodes (pydicom with the decoders the core install brings)
TRANSFER_SYNTAXES = (uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian,
                     uid.DeflatedExplicitVRLittleEndian, uid.RLELossless, uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit,
                     uid.JPEGLossless, uid.JPEGLosslessSV1, uid.JPEGLSLossless, uid.JPEGLSNearLossless,
                     uid.JPEG2000Lossless, uid.JPEG2000)
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000


def storage_scp(ae_title: str, callers: list[str], max_associations: int) -> AE:
    """The application entity: Verification and the storage classes above; `callers` the calling AE titles it
    accepts ([]: any; pynetdicom rejects the others' associations with reason "calling AE title not
    recognised"); other SOP classes are rejected in association negotiation."""
    ae = AE(ae_title=ae_title)
    ae.add_supported_context(Verification)
    for storage in STORAGE_CLASSES:
        ae.add_supported_context(storage, list(TRANSFER_SYNTAXES))
    ae.require_calling_aet = list(callers)
    ae.maximum_associations = max_associations
    return ae


def handlers(spool: Spool) -> list:
    """pynetdicom event handlers: each instance into the spool; a log line per association."""
    return [(evt.EVT_C_STORE, _store, [spool]), (evt.EVT_ACCEPTED, _accepted),
            (evt.EVT_RELEASED, _released, [spool]), (evt.EVT_ABORTED, _finished)]


def _store(event, spool: Spool) -> int:
    """C-STORE: success once the instance is in the spool; out of resources when it does not fit there."""
    try:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        series = spool.store(dataset).parent
    except ValueError as error:
        logger.warning("refused an instance from %s: %s", event.assoc.requestor.ae_title, error)
        return OUT_OF_RESOURCES
    except Exception:  # a dataset pydicom cannot parse or write
        logger.warning("could not read an instance from %s", event.assoc.requestor.ae_title, exc_info=True)
        return CANNOT_UNDERSTAND
    event.assoc.stored = getattr(event.assoc, "stored", 0) + 1
    event.assoc.series = getattr(event.assoc, "series", set()) | {series}
    return SUCCESS


def _accepted(event) -> None:
    event.assoc.started = time.perf_counter()


def _released(event, spool: Spool) -> None:
    """A released association has sent its series whole: they need not wait for their quiet time."""
    for series in getattr(event.assoc, "series", ()):
        spool.release(series)
    _finished(event)


def _finished(event) -> None:
    assoc = event.assoc
    logger.info("association from %s (%s:%s) %s: %d instances in %.1f s", assoc.requestor.ae_title,
                assoc.requestor.address, assoc.requestor.port, event.event.name.removeprefix("EVT_").lower(),
                getattr(assoc, "stored", 0), time.perf_counter() - getattr(assoc, "started", time.perf_counter()))
