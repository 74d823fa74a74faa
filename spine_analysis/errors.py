"""Errors a user can act on. Each derives from ValueError so scripts can catch them plainly."""


class SpineAnalysisError(ValueError):
    """Base class: the message is shown to the user as one line."""


class LandmarkError(SpineAnalysisError):
    """Landmarks are malformed: wrong count, NaN, or a degenerate vertebra."""


class ImageReadError(SpineAnalysisError):
    """An input image cannot be read or is not the kind of image expected."""


class ModelError(SpineAnalysisError):
    """Model weights are missing, corrupt or do not match their configuration."""


def sitk_reason(exc: RuntimeError) -> str:
    """The last line of a SimpleITK error, without its source-file prefix: the part a user can read."""
    return str(exc).strip().splitlines()[-1].replace("sitk::ERROR: ", "")
