"""Results saved as DICOM, so that a PACS or another viewer shows them beside their source images.

- CT masks as DICOM Segmentation (SEG) objects that reference the CT series they were drawn on:
  BINARY for labelled structures (``write_segmentation``), FRACTIONAL PROBABILITY for the fracture
  probability map (``write_fracture_probability``).
- The Cobb overlay as a Secondary Capture image in the radiograph's study (``write_overlay_capture``).

highdicom builds each object and checks it against the standard as it does; it is imported inside
the functions, as it takes a while to import and most commands never need it. Files are written
atomically, never over an input.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import __version__
from ..errors import DicomOutputError
from .atomic import atomic_output, check_output_folder

MANUFACTURER = "SpineAnalysis"
#: New series are numbered from here, so that viewers list them after the acquired series.
SERIES_NUMBER = 1000
#: Probabilities are stored in steps of 1/255, the most an 8-bit fractional SEG carries.
MAX_FRACTIONAL_VALUE = 255
OVERLAY_DESCRIPTION = "SpineAnalysis Cobb overlay - not for primary diagnosis"
#: Attributes a CT slice must carry for a SEG to be placed on it, and why, in the user's words.
_SLICE_ATTRIBUTES = {
    "StudyInstanceUID": "the study it belongs to", "SeriesInstanceUID": "the series it belongs to",
    "SOPInstanceUID": "the slice it refers to", "SOPClassUID": "the kind of image it refers to",
    "FrameOfReferenceUID": "the patient coordinate frame", "ImagePositionPatient": "where the slice lies",
    "ImageOrientationPatient": "how the slice is oriented", "PixelSpacing": "the pixel size",
    "Rows": "the slice size", "Columns": "the slice size",
}
#: Patient and study attributes every DICOM object carries, possibly empty; anonymisers often drop them.
_EMPTY_ALLOWED = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                  "StudyDate", "StudyTime", "ReferringPhysicianName")


@dataclass(frozen=True)
class Segment:
    """One labelled structure: its value in the label array, the name a viewer shows (e.g. "L1
    centrum") and its vertebra (e.g. "L1"), coded as the segment's anatomic region when known."""

    value: int
    name: str
    level: str | None = None


def _source_name(ds, k: int) -> str:
    """How a user finds slice ``k``: its file when it was read from one."""
    filename = getattr(ds, "filename", None)
    return f"CT slice {k + 1} ({Path(filename).name})" if isinstance(filename, str) else f"CT slice {k + 1}"


def check_sources(source_datasets: Sequence, what: str = "a DICOM SEG") -> None:
    """Refuse CT slices that cannot carry ``what``: an attribute it references missing or empty
    (anonymisers blank UIDs), several frames, or slices of more than one series. Callers check
    this before any long computation."""
    series = None
    for k, ds in enumerate(source_datasets):
        for keyword, purpose in _SLICE_ATTRIBUTES.items():
            if keyword not in ds or ds[keyword].is_empty:
                raise DicomOutputError(f"{_source_name(ds, k)} has no {keyword} ({purpose}): "
                                       f"{what} cannot be placed on it")
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise DicomOutputError(f"{_source_name(ds, k)} holds {ds.NumberOfFrames} frames; "
                                   "a series of single-slice CT images is expected")
        series = series or (ds.StudyInstanceUID, ds.SeriesInstanceUID)
        if (ds.StudyInstanceUID, ds.SeriesInstanceUID) != series:
            raise DicomOutputError(f"{_source_name(ds, k)} belongs to another series than CT slice 1; "
                                   "the slices of one series are expected")


def _check_sources(source_datasets: Sequence, shape: tuple[int, ...], what: str) -> None:
    """Refuse a grid that is not the CT series' own, slice for slice, or slices that cannot place it."""
    if len(shape) != 3:
        raise DicomOutputError(f"the {what} has {len(shape)} dimensions; a (slices, rows, columns) volume "
                               "on the CT's grid is expected")
    if len(source_datasets) != shape[0]:
        raise DicomOutputError(f"the {what} has {shape[0]} slices but {len(source_datasets)} CT slices were "
                               "given: it must be on the CT series' own grid, one slice per image")
    check_sources(source_datasets, f"the {what}")
    for k, ds in enumerate(source_datasets):
        if (ds.Rows, ds.Columns) != shape[1:]:
            raise DicomOutputError(f"{_source_name(ds, k)} is {ds.Columns} x {ds.Rows} pixels but the {what} "
                                   f"is {shape[2]} x {shape[1]}: it must be on the CT's own grid")


def _with_patient_and_study(source_datasets: Sequence) -> list:
    """The sources, the first (whose patient and study the SEG copies) given empty values for the
    attributes it lacks, as the standard allows; the caller's datasets stay untouched."""
    first = source_datasets[0]
    missing = [keyword for keyword in _EMPTY_ALLOWED if keyword not in first]
    if not missing:
        return list(source_datasets)
    from pydicom.dataset import Dataset

    header = Dataset()
    header.update({element.tag: element for element in first if element.keyword != "PixelData"})
    for keyword in missing:
        setattr(header, keyword, "")
    return [header, *source_datasets[1:]]


def _algorithm(artificial_intelligence: bool = True):
    """SpineAnalysis, this version, and its method's family (DICOM CID 7162): a network, or the
    classical thresholds and morphology."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    family = (codes.cid7162.ArtificialIntelligence if artificial_intelligence
              else codes.cid7162.MorphologicalOperations)
    return hd.AlgorithmIdentificationSequence(name=MANUFACTURER, family=family, version=__version__)


def _region(level: str | None):
    """The SNOMED CT code of vertebra ``level`` (e.g. "L1 vertebra"), else the spine as a whole."""
    from pydicom.sr.codedict import codes

    vertebra = getattr(codes.SCT, f"{level}Vertebra", None) if level else None
    return vertebra or codes.SCT.Spine


def _protected(source_datasets: Sequence, protect: Sequence) -> list:
    """The input files never written over: those the datasets were read from, and ``protect``."""
    read_from = [getattr(ds, "filename", None) for ds in source_datasets]
    return [*(name for name in read_from if isinstance(name, str)), *protect]


def _save(dataset, path, protect: Sequence) -> Path:
    """``dataset`` as a DICOM file at ``path``, appearing complete or not at all, never over an input."""
    path = Path(path)
    target = check_output_folder(path.parent, [path.name], protect)[path.name]
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as tmp:
        dataset.save_as(tmp, enforce_file_format=True)
    return target


def _segmentation(source_datasets: Sequence, pixels: np.ndarray, kind: str, descriptions: list,
                  series_description: str, **options):
    """A SEG of ``pixels`` (slice k on ``source_datasets[k]``) in a new series of the CT's study."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    return hd.seg.Segmentation(
        source_images=_with_patient_and_study(source_datasets), pixel_array=pixels, segmentation_type=kind,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name="spine-analysis", software_versions=__version__, device_serial_number="none",
        series_description=series_description, content_description=series_description, **options)


def write_segmentation(labels: np.ndarray, source_datasets: Sequence, segments: Sequence[Segment], path, *,
                       series_description: str = "SpineAnalysis vertebral centra",
                       artificial_intelligence: bool = True, protect: Sequence = ()) -> Path:
    """Save label volume ``labels`` (slices, rows, columns; 0 = background) as a BINARY DICOM SEG
    referencing the CT series it was drawn on: slice k of ``labels`` lies on ``source_datasets[k]``
    (pydicom headers of that series; pixel data is not needed).

    Each of ``segments`` becomes one SEG segment, coded as bone tissue in its vertebra; segments
    with no voxel are left out. Every non-zero value must be named by a segment;
    ``artificial_intelligence`` False codes the method as morphological operations. Returns the path.
    """
    from pydicom.sr.codedict import codes
    import highdicom as hd

    labels = np.asarray(labels)
    if labels.dtype != bool and not np.issubdtype(labels.dtype, np.integer):
        raise DicomOutputError(f"the label volume holds {labels.dtype} values; whole-number labels are expected")
    _check_sources(source_datasets, labels.shape, "label volume")
    if labels.size and labels.min() < 0:
        raise DicomOutputError(f"the label volume holds the negative label {labels.min()}; labels are 0 or more")
    counts = np.zeros(int(labels.max()) + 1 if labels.size else 1, np.int64)
    for plane in labels:   # slice by slice: counting the whole volume at once copied it as 64-bit integers
        counts += np.bincount(plane.ravel(), minlength=len(counts))
    named = {segment.value for segment in segments}
    unnamed = [value for value in np.flatnonzero(counts[1:]) + 1 if value not in named]
    if unnamed:
        raise DicomOutputError(f"label {unnamed[0]} of the label volume has no segment name; "
                               "every label saved must be named")
    if len(named) != len(segments):
        raise DicomOutputError("two segments share a label value; each label is one segment")
    present = [segment for segment in segments if 0 < segment.value < len(counts) and counts[segment.value]]
    if not present:
        raise DicomOutputError("the label volume is empty: no segment has a voxel, so there is nothing to save")
    # label value -> segment number 1..n, 0 for the rest
    numbers = np.zeros(len(counts), np.uint8 if len(present) < 256 else np.uint16)
    for number, segment in enumerate(present, start=1):
        numbers[segment.value] = number
    algorithm = _algorithm(artificial_intelligence)
    descriptions = [hd.seg.SegmentDescription(number, segment.name, codes.SCT.Tissue, codes.SCT.Bone,
                                              hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm,
                                              anatomic_regions=[_region(segment.level)])
                    for number, segment in enumerate(present, start=1)]
    seg = _segmentation(source_datasets, numbers[labels], hd.seg.SegmentationTypeValues.BINARY, descriptions,
                        series_description)
    return _save(seg, path, _protected(source_datasets, protect))


def write_fracture_probability(probability: np.ndarray, source_datasets: Sequence, path, *,
                               series_description: str = "SpineAnalysis vertebral fracture probability",
                               protect: Sequence = ()) -> Path:
    """Save a fracture probability map (slices, rows, columns; 0 to 1, on the CT's grid, slice k on
    ``source_datasets[k]``) as a FRACTIONAL PROBABILITY DICOM SEG, in steps of 1/255.

    One segment, coded as a traumatic abnormality (the nearest parent of "fracture" among pydicom's
    SNOMED CT codes) of the spine. Returns the path."""
    from pydicom.sr.codedict import codes
    import highdicom as hd

    probability = np.asarray(probability)
    if not np.issubdtype(probability.dtype, np.floating):
        raise DicomOutputError(f"the probability map holds {probability.dtype} values; probabilities from 0 to 1 "
                               "are expected")
    _check_sources(source_datasets, probability.shape, "probability map")
    low, high = (float(probability.min()), float(probability.max())) if probability.size else (0.0, 0.0)
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 1:
        raise DicomOutputError(f"the probability map holds values from {low:g} to {high:g}; probabilities from "
                               "0 to 1 are expected")
    description = hd.seg.SegmentDescription(
        1, "vertebral fracture probability", codes.SCT.MorphologicallyAbnormalStructure,
        codes.SCT.TraumaticAbnormalityMorphologic, hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, _algorithm(),
        anatomic_regions=[_region(None)])
    seg = _segmentation(source_datasets, probability.astype(np.float32, copy=False),
                        hd.seg.SegmentationTypeValues.FRACTIONAL, [description], series_description,
                        fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
                        max_fractional_value=MAX_FRACTIONAL_VALUE,
                        omit_empty_frames=bool(probability.any()))   # an all-zero map keeps every slice
    return _save(seg, path, _protected(source_datasets, protect))


def check_radiograph(radiograph) -> None:
    """Refuse a radiograph header (pydicom) whose study a capture cannot be filed in: a UID it
    references missing or blank (anonymisers blank them). Callers check this before detection."""
    source = getattr(radiograph, "filename", None)
    name = Path(source).name if isinstance(source, str) else "the radiograph"
    for keyword in ("StudyInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        if keyword not in radiograph or radiograph[keyword].is_empty:
            raise DicomOutputError(f"{name} has no {keyword}: the overlay cannot be filed in its study")


def write_overlay_capture(rgb: np.ndarray, radiograph, path, *, patient_right_on_image_left: bool = True,
                          protect: Sequence = ()) -> Path:
    """Save the Cobb overlay ``rgb`` (uint8, rows x columns x 3, as the report draws it) as a
    Secondary Capture in a new series of the study of ``radiograph`` (its pydicom header), with
    the same patient, so that it is filed beside the radiograph. Returns the path.

    The overlay carries burned-in text and may be shrunk and topped by a title banner, so it
    states no pixel spacing: it shows the measurement, it is not measured on. Its rows run
    toward the patient's feet and its columns toward the patient's left
    (``patient_right_on_image_left``, a standard AP view) or right."""
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image (rows, columns, 3), got {rgb.dtype} {rgb.shape}")
    check_radiograph(radiograph)
    capture = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=radiograph, pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", series_instance_uid=generate_uid(), series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        patient_orientation=("L" if patient_right_on_image_left else "R", "F"),
        transfer_syntax_uid="1.2.840.10008.1.2.1",   # Explicit VR Little Endian, which every viewer reads
        series_description=OVERLAY_DESCRIPTION, manufacturer_model_name="spine-analysis",
        software_versions=__version__)
    capture.BurnedInAnnotation = "YES"
    capture.BodyPartExamined = "SPINE"   # unpaired: no laterality is needed
    capture.DerivationDescription = "Cobb angle measurement drawn on the radiograph by SpineAnalysis"
    reference = Dataset()
    reference.ReferencedSOPClassUID = radiograph.SOPClassUID
    reference.ReferencedSOPInstanceUID = radiograph.SOPInstanceUID
    capture.SourceImageSequence = [reference]
    return _save(capture, path, _protected([radiograph], protect))
