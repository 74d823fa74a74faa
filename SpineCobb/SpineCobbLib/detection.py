"""The engine's "landmarks" job: the request SpineCobb sends and what it reads from the answer.

The job runs in `PythonSlicer -m spine_analysis.jobs` (see SpineCommonLib.jobs for the protocol).
"""
from SpineCommonLib.jobs import EngineJob, JobFailed


def landmarkJob(image, weightsPath=None, logCallback=None, progressCallback=None):
    """An EngineJob that detects the landmarks on `image`, a 2D array (rows, columns).

    Pixel (x, y) of the image the engine reads is IJK (x, y, 0) of the radiograph volume.
    `weightsPath` is sent only when the user chose weights: otherwise the engine picks
    $SPINE_ANALYSIS_LANDMARK_WEIGHTS or its bundled model.
    """
    import SimpleITK as sitk

    return EngineJob({"job": "landmarks", "weights": str(weightsPath) if weightsPath else None},
                     images={"image": sitk.GetImageFromArray(image)},
                     logCallback=logCallback, progressCallback=progressCallback)


def framingWarnings(flags):
    """Messages of the detector's framing flags: T1 or L5 found where the model's training
    radiographs rarely have them, so the level names may be shifted."""
    return [flag.get("message", "") for flag in flags or [] if isinstance(flag, dict) and flag.get("code") == "framing"]


def landmarksFromResult(result):
    """(SpineLandmarks in pixels, framing warnings) from the result of a landmarks job."""
    from spine_analysis.xray.landmarks import SpineLandmarks

    if not isinstance(result, dict) or "landmarks" not in result:
        raise JobFailed("The engine answered the landmark detection without landmarks.")
    return SpineLandmarks.from_dict(result["landmarks"]), framingWarnings(result.get("flags"))
