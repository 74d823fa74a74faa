"""The engine's "cobb" job seen from Slicer, without Slicer (tested by Testing/test_slicer_spinecobb_helpers.py):
the request, what SpineCobb reads from the answer, and what it says when the image did not pass the engine's
spine check (refused, or measured anyway with no severity stated).

The job runs in the engine process (see SpineCommonLib.protocol for the answers). Pixel (x, y) of the image the
engine reads is IJK (x, y, 0) of the radiograph volume.
"""
import dataclasses

from SpineCommonLib.protocol import JobFailed

#: The engine's error code when the image does not look like an AP spine radiograph (and force was not asked).
NOT_SPINE = "not_spine"
#: The option (Advanced section of the .ui) that measures such an image anyway.
FORCE_OPTION = "Measure even if the image does not look like a spine radiograph"
#: What stands for the severity of a curve when the image did not pass the spine check (as the engine's report says).
SEVERITY_NOT_STATED = "not stated: the image did not pass the spine check"
SEVERITY_NOT_STATED_CELL = "—"
#: The reason stored when the engine gave none.
UNKNOWN_REASON = "the image did not pass the spine check"


@dataclasses.dataclass(frozen=True)
class CobbAnswer:
    """The parts of a cobb job's answer that SpineCobb uses."""

    landmarks: object                 # spine_analysis SpineLandmarks, in pixels
    warnings: list                    # framing warnings: check T1 or L5 when there are any
    spineCheckFailure: object = None  # why the image did not pass the spine check, when measured anyway
    model: object = None              # the engine's model version text ("landmarks_from")
    seconds: object = None            # the engine's timings ("timings_s")
    spineCheck: dict = dataclasses.field(default_factory=dict)  # the engine's {"passed", "reason", "measures"}


def cobbRequest(weightsPath=None, force=False):
    """The cobb job without its image. `weightsPath` is sent only when the user chose weights: otherwise the
    engine picks $SPINE_ANALYSIS_LANDMARK_WEIGHTS or its bundled model. `force` measures an image that does not
    look like an AP spine radiograph instead of refusing it."""
    return {"job": "cobb", "weights": str(weightsPath) if weightsPath else None, "force": bool(force)}


def framingWarnings(flags):
    """Messages of the detector's framing flags: T1 or L5 found where the model's training
    radiographs rarely have them, so the level names may be shifted."""
    return [flag.get("message", "") for flag in flags or [] if isinstance(flag, dict) and flag.get("code") == "framing"]


def cobbAnswer(result):
    """The CobbAnswer of a finished cobb job (its done message without "status")."""
    from spine_analysis.xray.landmarks import SpineLandmarks

    if not isinstance(result, dict) or "landmarks" not in result:
        raise JobFailed("The engine answered the landmark detection without landmarks.")
    spineCheck = result.get("spine_check") if isinstance(result.get("spine_check"), dict) else {}
    failure = None
    if result.get("forced"):
        failure = str(spineCheck.get("reason") or "").strip() or UNKNOWN_REASON
    return CobbAnswer(SpineLandmarks.from_dict(result["landmarks"]), framingWarnings(result.get("flags")), failure,
                      result.get("landmarks_from"), result.get("timings_s"), dict(spineCheck))


def isRefusal(error):
    """True for the engine's refusal of an image that does not look like an AP spine radiograph."""
    return isinstance(error, JobFailed) and error.code == NOT_SPINE


def refusalText(reason):
    """The error dialog's text for a refusal: the engine's reason, then how to measure anyway."""
    return (f"{reason}\n\nIf it is an AP spine radiograph, check Advanced → \"{FORCE_OPTION}\" and click Apply "
            "again: the landmarks and Cobb angles are then measured, but no severity is stated.")


def shownSeverity(severity, spineCheckFailure, cell=False):
    """The severity to show for a curve: withheld when the image did not pass the spine check
    (`spineCheckFailure` is its reason), "—" in a table `cell`."""
    if not spineCheckFailure:
        return severity
    return SEVERITY_NOT_STATED_CELL if cell else SEVERITY_NOT_STATED

