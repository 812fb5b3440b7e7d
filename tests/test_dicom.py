"""DICOM in `medivision.enhance` on pydicom's own test files: every transfer syntax, multi-frame objects,
the conventions of derived images, and folders in which some files fail. Where no model is needed, the
derived object is built by `medivision.io.dicom_derived.derive` alone."""

import datetime
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian

import medivision.enhance
import medivision.inference.pipeline
from medivision.io.dicom_derived import DerivedSeries, derive
from medivision.io.intensity import IntensityMap
from tests.clinic import run, write_dicom_series

# One MR slice in every lossless encoding pydicom ships: the same stored values in each.
MR_SMALL = ("MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
            "MR_small_padded.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm")


def bundled(name):
    """A test file that ships inside pydicom's wheel."""
    return get_testdata_file(name, download=False)


def external(name):
    """A test file of the pydicom-data package (a dev dependency), or the test is skipped."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} comes with pydicom's test data package: pip install pydicom-data")
    return path


def copy_in(folder, names, find=bundled):
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(find(name), folder / name)
    return folder


def derived_from(dataset, scale=4):
    """`dataset` derived with zero pixels on the finer grid: its metadata as enhance writes it."""
    frames, samples = int(dataset.get("NumberOfFrames") or 1), dataset.SamplesPerPixel
    dtype = f"{'i' if dataset.PixelRepresentation else 'u'}{dataset.BitsAllocated // 8}"
    pixels = np.zeros((frames, samples, dataset.Rows * scale, dataset.Columns * scale), dtype)
    series = DerivedSeries.beside(dataset, datetime.datetime.now())
    return derive(dataset, pixels, scale, series, "SR 4x model estimate")


def with_values(source, path, values):
    """`source` (Explicit VR Little Endian) saved to `path` with IS elements {tag: two characters} as given,
    valid or not (pydicom refuses to set an invalid IS value, but reads one)."""
    dataset = pydicom.dcmread(source)
    for tag in values:
        dataset[tag].value = 99
    dataset.save_as(path)
    data = path.read_bytes()
    for tag, text in values.items():
        element = tag.to_bytes(4, "big")
        header = element[1::-1] + element[:1:-1] + b"IS\x02\x00"  # group, element little endian; VR, length
        assert data.count(header + b"99") == 1
        data = data.replace(header + b"99", header + text.encode())
    path.write_bytes(data)
    return path


def assert_uncompressed_little_endian(dataset):
    assert dataset.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert dataset.original_encoding == (False, True)  # as read back: explicit VR, little endian
    frames = int(dataset.get("NumberOfFrames") or 1)
    expected = dataset.Rows * dataset.Columns * dataset.SamplesPerPixel * frames * dataset.BitsAllocated // 8
    assert len(dataset.PixelData) == expected + expected % 2  # native pixels, not an encapsulated stream


@pytest.mark.filterwarnings("ignore:The pixel data is 8320 bytes long")  # pydicom on one of its own test files
def test_every_encoding_of_an_mr_slice_gives_the_same_uncompressed_output(tiny_checkpoint, tmp_path):
    report = run(tiny_checkpoint, copy_in(tmp_path / "in", MR_SMALL), tmp_path / "out")
    assert sorted(path.name for path in report.written) == sorted(MR_SMALL) and not report.skipped
    reference = pydicom.dcmread(tmp_path / "out" / "MR_small.dcm").pixel_array
    source = pydicom.dcmread(bundled("MR_small.dcm")).pixel_array
    assert reference.shape == (256, 256) and source.min() <= reference.min() <= reference.max() <= source.max()
    for name in MR_SMALL:
        derived = pydicom.dcmread(tmp_path / "out" / name)
        assert_uncompressed_little_endian(derived)
        assert np.array_equal(derived.pixel_array, reference), name  # big endian and compressed read alike


SLOW = pytest.mark.slow  # 512x512 and larger inputs: 4 s (1024x256) to 14 s (1024x1024) each on two cores


@pytest.mark.parametrize("name, find, syntax, lossy", [
    ("JPEGLSNearLossless_16.dcm", bundled, "JPEG-LS Lossy (Near-Lossless) Image Compression", "01"),  # unflagged
    ("SC_rgb_jpeg_dcmtk.dcm", bundled, "JPEG Baseline (Process 1)", "01"),  # YBR_FULL, decoded to RGB
    pytest.param("image_dfl.dcm", bundled, "Deflated Explicit VR Little Endian", None, marks=SLOW),
    pytest.param("JPGExtended.dcm", bundled, "JPEG Extended (Process 2 and 4)", "01", marks=SLOW),  # 12-bit
    pytest.param("JPEG-LL.dcm", external, "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 "
                 "[Selection Value 1])", "00", marks=SLOW),  # libjpeg; the source says 00
    pytest.param("JPEG2000.dcm", bundled, "JPEG 2000 Image Compression", "01", marks=SLOW),
    pytest.param("MR2_J2KI.dcm", external, "JPEG 2000 Image Compression", "01", marks=SLOW),  # 1024x1024, lossy
])
def test_deflated_and_compressed_files_are_enhanced(tiny_checkpoint, tmp_path, name, find, syntax, lossy):
    source = pydicom.dcmread(find(name))
    assert source.file_meta.TransferSyntaxUID.name == syntax
    (written,) = run(tiny_checkpoint, find(name), tmp_path / name).written
    derived = pydicom.dcmread(written)
    assert_uncompressed_little_endian(derived)
    assert (derived.Rows, derived.Columns, derived.BitsStored) == (source.Rows * 4, source.Columns * 4,
                                                                   source.BitsStored)
    pixels, stored = derived.pixel_array, source.pixel_array
    assert stored.min() <= pixels.min() and pixels.max() <= stored.max() and pixels.max() > stored.max() / 2
    assert derived.get("LossyImageCompression") == lossy  # once lossy compressed, always flagged so


@pytest.mark.parametrize("said, lossy, method", [(None, "01", "ISO_15444_1"), ("00", "00", None)])
def test_jpeg_2000_is_flagged_lossy_unless_the_source_says_it_was_not(said, lossy, method):
    source = pydicom.dcmread(bundled("JPEG2000.dcm"))  # JPEG 2000 may be reversible or not
    del source.LossyImageCompression
    if said is not None:
        source.LossyImageCompression = said
    derived = derived_from(source)
    assert derived.get("LossyImageCompression") == lossy
    assert derived.get("LossyImageCompressionMethod") == method


def test_damaged_files_are_skipped_with_their_reason(tiny_checkpoint, tmp_path):
    folder = copy_in(tmp_path / "in", ["JPEG-lossy.dcm", "MR_small.dcm", "MR_truncated.dcm"])
    report = run(tiny_checkpoint, folder, tmp_path / "out")
    assert report.written == [tmp_path / "out" / "MR_small.dcm"]
    reasons = dict((path.name, reason) for path, reason in report.skipped)
    # JPEG-lossy.dcm is pydicom's non-conformant 12-bit JPEG (JPGExtended.dcm is the fixed copy)
    assert "JPEG-lossy.dcm: its pixel data cannot be decoded (transfer syntax JPEG Extended" in (
        reasons["JPEG-lossy.dcm"])
    assert "MR_truncated.dcm: its pixel data cannot be decoded" in reasons["MR_truncated.dcm"]
    assert "less than expected" in reasons["MR_truncated.dcm"]
    assert all("\n" not in reason for reason in reasons.values())
    assert "skipped 2 of 3 files" in report.summary()


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")  # the bad files' invalid values, on purpose
def test_a_bad_file_first_in_the_middle_or_last_never_stops_the_folder(tiny_checkpoint, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    write_dicom_series(folder, count=2)  # slice000.dcm, slice001.dcm: good
    (folder / "a_garbage.dcm").write_bytes(b"\x00" * 200)  # read fails, sorts first
    shutil.copy(bundled("MR_truncated.dcm"), folder / "m_truncated.dcm")  # decoding fails, in the middle
    shutil.copy(bundled("MR_small.dcm"), folder / "n_model.dcm")  # the model fails on it (below)
    shutil.copy(bundled("MR_small.dcm"), folder / "z_unwritable.dcm")  # writing fails, sorts last
    bad_numbers = pydicom.dcmread(bundled("MR_small.dcm"))
    bad_numbers.SeriesInstanceUID = pydicom.uid.generate_uid()  # a series of its own, read after n_model's
    bad_numbers.save_as(tmp_path / "own_series.dcm")
    with_values(tmp_path / "own_series.dcm", folder / "p_bad_numbers.dcm", {0x00200011: "ab", 0x00200013: "x1"})
    write_dicom_series(folder / "no_map", count=2, size=(16, 12))  # its intensity map fails (below)
    (tmp_path / "out" / "z_unwritable.dcm").mkdir(parents=True)  # a folder where its output file should go
    super_resolve = medivision.inference.pipeline.super_resolve

    def failing_on_64_pixel_rows(model, lr, *args, **kwargs):
        if lr.shape[-2] == 64 and lr.shape[-1] == 64 and not failing_on_64_pixel_rows.failed:
            failing_on_64_pixel_rows.failed = True
            raise RuntimeError("not enough memory: you tried to allocate 1099511627776 bytes")
        return super_resolve(model, lr, *args, **kwargs)

    fit = IntensityMap.fit.__func__

    def no_finite_values_in_16_by_12_slices(cls, values, mode="minmax"):
        if values.size == 2 * 16 * 12:
            raise ValueError("the image holds no finite values")
        return fit(cls, values, mode)

    failing_on_64_pixel_rows.failed = False
    monkeypatch.setattr(medivision.inference.pipeline, "super_resolve", failing_on_64_pixel_rows)
    monkeypatch.setattr(IntensityMap, "fit", classmethod(no_finite_values_in_16_by_12_slices))
    report = run(tiny_checkpoint, folder, tmp_path / "out", "overwrite=true")
    written = sorted(path.relative_to(tmp_path / "out").as_posix() for path in report.written)
    assert written == ["p_bad_numbers.dcm", "slice000.dcm", "slice001.dcm"]
    assert pydicom.dcmread(tmp_path / "out" / "p_bad_numbers.dcm").SeriesNumber == 1000  # 0 + 1000
    reasons = dict((path.relative_to(folder).as_posix(), reason) for path, reason in report.skipped)
    assert sorted(reasons) == ["a_garbage.dcm", "m_truncated.dcm", "n_model.dcm", "no_map/slice000.dcm",
                               "no_map/slice001.dcm", "z_unwritable.dcm"]
    assert "a_garbage.dcm cannot be read as DICOM" in reasons["a_garbage.dcm"]
    assert "RuntimeError: not enough memory" in reasons["n_model.dcm"]
    assert "z_unwritable.dcm: IsADirectoryError" in reasons["z_unwritable.dcm"]
    for name in ("no_map/slice000.dcm", "no_map/slice001.dcm"):
        assert reasons[name] == (f"{folder / name}: the image holds no finite values (2 files of one series, "
                                 "skipped together)")
    assert "skipped 6 of 9 files" in report.summary()

    # into a fresh folder, with the model working: the two unreadable files and the series without a map
    with pytest.raises(ValueError, match=r"strict=true: 4 of 9 files were skipped \(.*a_garbage.dcm cannot be read"
                                         r".*; the other 5 outputs are written"):
        run(tiny_checkpoint, folder, tmp_path / "strict", "strict=true")
    assert len(list((tmp_path / "strict").iterdir())) == 5
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("a_garbage.dcm", "m_truncated.dcm"):
        shutil.copy(folder / name, bad / name)
    with pytest.raises(ValueError, match="none of the 2 input files could be enhanced: .*a_garbage.dcm cannot"):
        run(tiny_checkpoint, bad, tmp_path / "none")


def test_derived_series_follows_the_conventions_for_derived_images(tiny_checkpoint, tmp_path):
    sources = write_dicom_series(tmp_path / "series", count=2)
    with_private = pydicom.dcmread(sources[0])
    block = with_private.private_block(0x0029, "ACME scanner", create=True)
    block.add_new(0x10, "LO", "vendor detail about the acquired pixels")
    with_private.save_as(sources[0])
    before = datetime.datetime.now().replace(microsecond=0)
    run(tiny_checkpoint, tmp_path / "series", tmp_path / "out")
    outputs = [pydicom.dcmread(tmp_path / "out" / path.name) for path in sources]
    for source, derived in zip(map(pydicom.dcmread, sources), outputs):
        assert derived.SeriesNumber == source.SeriesNumber + 1000
        created = datetime.datetime.strptime(derived.InstanceCreationDate + derived.InstanceCreationTime,
                                             "%Y%m%d%H%M%S")
        series = datetime.datetime.strptime(derived.SeriesDate + derived.SeriesTime, "%Y%m%d%H%M%S")
        assert before <= series <= created <= datetime.datetime.now()
        assert (derived.ContentDate, derived.ContentTime) == (derived.InstanceCreationDate,
                                                              derived.InstanceCreationTime)
        (code,) = derived.DerivationCodeSequence
        assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == ("113085", "DCM",
                                                                                  "Spatial resampling")
        (reference,) = derived.SourceImageSequence
        assert (reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID) == (source.SOPClassUID,
                                                                                          source.SOPInstanceUID)
        (purpose,) = reference.PurposeOfReferenceCodeSequence
        assert (purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning) == (
            "121322", "DCM", "Source image for image processing operation")
        assert list(derived.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert not any(element.tag.is_private for element in derived)  # private elements are dropped
    assert len({(ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDate, ds.SeriesTime) for ds in outputs}) == 1


def test_multi_frame_object_becomes_one_derived_multi_frame_object(tiny_checkpoint, tmp_path):
    source = pydicom.dcmread(bundled("SC_rgb_rle_2frame.dcm"))  # RGB, 2 frames, RLE
    report = run(tiny_checkpoint, bundled("SC_rgb_rle_2frame.dcm"), tmp_path / "out.dcm")
    derived = pydicom.dcmread(report.written[0])
    assert_uncompressed_little_endian(derived)
    assert derived.NumberOfFrames == 2 and derived.PhotometricInterpretation == "RGB" and len(report.lr_psnr) == 2
    pixels, stored = derived.pixel_array, source.pixel_array
    assert pixels.shape == (2, 400, 400, 3) and pixels.dtype == np.uint8
    blocks = pixels.reshape(2, 100, 4, 100, 4, 3).mean(axis=(2, 4))  # back on the source grid
    for frame in range(2):  # each output frame is its own source frame, super-resolved
        error = np.abs(blocks - stored[frame]).mean(axis=(1, 2, 3))
        assert error[frame] < 0.25 * error[1 - frame]


def test_enhanced_mr_multi_frame_with_one_intensity_map(tiny_checkpoint, tmp_path):
    path = external("emri_small.dcm")  # Enhanced MR Image Storage, 10 frames, 12 bits in 16
    source = pydicom.dcmread(path)
    report = run(tiny_checkpoint, path, tmp_path / "out.dcm")
    derived = pydicom.dcmread(report.written[0])
    assert_uncompressed_little_endian(derived)
    assert derived.SOPClassUID == source.SOPClassUID and derived.NumberOfFrames == 10 and len(report.lr_psnr) == 10
    assert list(derived.ImageType) == ["DERIVED", "PRIMARY", "T1", "NONE"]  # value 2 of enhanced MR: PRIMARY
    pixels, stored = derived.pixel_array, source.pixel_array
    assert pixels.shape == (10, 256, 256) and derived.BitsStored == 12
    assert stored.min() <= pixels.min() and pixels.max() <= stored.max()  # one map: the object's range
    blocks = pixels.reshape(10, 64, 4, 64, 4).mean(axis=(2, 4))  # every frame back on the source grid
    assert np.abs(blocks - stored).mean(axis=(1, 2)).max() < 0.05 * (int(stored.max()) - int(stored.min()))
    (evidence,) = derived.SourceImageEvidenceSequence
    assert evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
        source.SOPInstanceUID)


@pytest.mark.slow  # two 512x512 frames: about 20 s on two cores
def test_enhanced_ct_functional_groups_describe_the_finer_grid(tiny_checkpoint, tmp_path):
    path = external("eCT_Supplemental.dcm")  # Enhanced CT Image Storage, 2 frames, full functional groups
    source = pydicom.dcmread(path)
    derived = pydicom.dcmread(run(tiny_checkpoint, path, tmp_path / "out.dcm").written[0])
    shared, source_shared = derived.SharedFunctionalGroupsSequence[0], source.SharedFunctionalGroupsSequence[0]
    spacing = [float(value) for value in source_shared.PixelMeasuresSequence[0].PixelSpacing]
    assert [float(value) for value in shared.PixelMeasuresSequence[0].PixelSpacing] == pytest.approx(
        [value / 4 for value in spacing])
    orientation = np.array([float(v) for v in source_shared.PlaneOrientationSequence[0].ImageOrientationPatient])
    shift = -0.375 * (spacing[1] * orientation[:3] + spacing[0] * orientation[3:])
    for number, (frame, original) in enumerate(zip(derived.PerFrameFunctionalGroupsSequence,
                                                   source.PerFrameFunctionalGroupsSequence), start=1):
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        expected = np.array([float(v) for v in original.PlanePositionSequence[0].ImagePositionPatient]) + shift
        assert position == pytest.approx(expected.tolist(), abs=1e-4)
        (derivation,) = frame.DerivationImageSequence
        assert derivation.DerivationCodeSequence[0].CodeValue == "113085"
        assert derivation.SourceImageSequence[0].ReferencedFrameNumber == number
        assert derivation.SourceImageSequence[0].PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
    frame_types = [group.CTImageFrameTypeSequence[0].FrameType[0] for group in
                   [shared, *derived.PerFrameFunctionalGroupsSequence] if "CTImageFrameTypeSequence" in group]
    assert frame_types and set(frame_types) == {"DERIVED"}


def test_word_values_of_a_big_endian_file_are_swapped_and_unknown_ones_dropped(tiny_checkpoint, tmp_path):
    dataset = pydicom.dcmread(bundled("MR_small_bigendian.dcm"))
    table = np.arange(0, 4096, 16, dtype=np.uint16)  # a VOI LUT of 256 entries, 16-bit words
    lut = pydicom.Dataset()
    lut.LUTDescriptor = [256, 0, 16]
    lut.add_new(0x00283006, "OW", table.astype(">u2").tobytes())  # LUT Data; pydicom writes OW bytes as given
    dataset.VOILUTSequence = [lut]
    dataset.add_new(0x0018FFF0, "UN", b"\x00\x01\x02\x03")  # public, but in no dictionary: its layout is unknown
    dataset.save_as(tmp_path / "big.dcm")
    derived = pydicom.dcmread(run(tiny_checkpoint, tmp_path / "big.dcm", tmp_path / "out.dcm").written[0])
    assert np.array_equal(np.frombuffer(derived.VOILUTSequence[0][0x00283006].value, "<u2"), table)
    assert 0x0018FFF0 not in derived


def test_overlay_planes_on_the_source_grid_are_dropped():
    source = pydicom.dcmread(external("MR-SIEMENS-DICOM-WithOverlays.dcm"))
    assert (source[0x60000010].value, source[0x60000011].value) == (source.Rows, source.Columns)  # Overlay Rows/Columns
    derived = derived_from(source)
    assert derived.Rows == 4 * source.Rows
    assert not any(0x6000 <= element.tag.group <= 0x601E for element in derived)  # no overlay on the wrong grid


def test_derivation_of_an_enhanced_object_is_per_frame_only(tmp_path):
    source = pydicom.dcmread(external("eCT_Supplemental.dcm"))
    shared = source.SharedFunctionalGroupsSequence[0]
    earlier = pydicom.Dataset()
    earlier.DerivationDescription = "an earlier derivation, for all frames"
    shared.DerivationImageSequence = [earlier]
    derived = derived_from(source)
    assert "DerivationImageSequence" not in derived.SharedFunctionalGroupsSequence[0]
    for number, frame in enumerate(derived.PerFrameFunctionalGroupsSequence, start=1):
        assert frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber == number
    derived.save_as(tmp_path / "derived.dcm", enforce_file_format=True)  # a writable object


def test_enhancing_a_series_again_with_the_same_model_gives_the_same_uids(tiny_checkpoint, tmp_path):
    """A series sent twice (a PACS retrying, a rerun) must not become two derived series; another model's output
    must not replace this one's."""
    write_dicom_series(tmp_path / "series", count=2)

    def uids(output, checkpoint=tiny_checkpoint):
        run(checkpoint, tmp_path / "series", tmp_path / output, "ensemble=8", "uncertainty=true")
        return sorted((pydicom.dcmread(path).SeriesInstanceUID, pydicom.dcmread(path).SOPInstanceUID,
                       pydicom.dcmread(path).file_meta.MediaStorageSOPInstanceUID)
                      for path in (tmp_path / output).rglob("*.dcm"))

    first, again = uids("first"), uids("again")
    assert first == again and len(first) == 4  # 2 SR instances and 2 uncertainty maps
    assert len({series for series, _, _ in first}) == 2 and all(sop == meta for _, sop, meta in first)
    other_checkpoint = tmp_path / "other.ckpt"
    shutil.copy(tiny_checkpoint, other_checkpoint)  # the same weights under another name: another model to a reader
    other = uids("other", other_checkpoint)
    assert not {sop for _, sop, _ in other} & {sop for _, sop, _ in first}
