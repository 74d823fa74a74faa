"""Errors a user can act on. Each derives from ValueError so scripts can catch them plainly."""


class SpineAnalysisError(ValueError):
    """Base class: the message is shown to the user as one line."""


class LandmarkError(SpineAnalysisError):
    """Landmarks are malformed: wrong count, NaN, or a degenerate vertebra."""


class ImageReadError(SpineAnalysisError):
    """An input image cannot be read or is not the kind of image expected."""


class ModelError(SpineAnalysisError):
    """Model weights are missing, corrupt or do not match their configuration."""


class DicomOutputError(SpineAnalysisError):
    """A result cannot be saved as DICOM: its grid does not match the source series, or a source
    header lacks what is needed to place the result in its study."""


class NotSpineRadiographError(SpineAnalysisError):
    """The image does not look like an AP spine radiograph the model can measure
    (``xray.spine_check``); front ends say how to measure it anyway."""

    code = "not_spine"


def sitk_reason(exc: RuntimeError) -> str:
    """The last line of a SimpleITK error, without its source-file prefix: the part a user can read."""
    return str(exc).strip().splitlines()[-1].replace("sitk::ERROR: ", "")



def os_error_message(exc: OSError) -> str:
    """An OSError in the user's words: the file and the system's reason, without the errno."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{(exc.strerror or str(exc)).lower()}"
