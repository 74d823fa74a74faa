"""Can this image be measured? The spine check, from what the landmark model already saw.

A model asked for 17 vertebrae always returns 17: on a photograph, a page of text or noise it
draws a spine anyway. The check refuses such images before any angle is reported, from
evidence the detection gathers anyway (no second network): how many levels the chain of
centre peaks reached and how strong those peaks and the corner peaks were, how many peaks were
left over, whether the corners found on the image and on its mirror image agree, and whether
the vertebrae widen from T1 to L5 as a real spine's do (an upside-down radiograph has them
narrowing). The limits are calibrated on the 481 AASCE radiographs (refused: at most 1 %) and
on images that are not spine radiographs; ``benchmarks/spine_check.py`` measures both.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .landmarks import vertebra_midlines

#: Fewest levels T1–L5 the chain of centre peaks must reach.
MIN_MATCHED_LEVELS = 12
#: Lowest mean centre-peak value over the 17 levels.
MIN_CENTRE_CONFIDENCE = 0.45
#: Lowest median corner-peak value.
MIN_CORNER_CONFIDENCE = 0.44
#: Most centre peaks the chain of vertebrae may leave out (C7, the sacrum, a few ribs).
MAX_EXTRA_PEAKS = 20
#: Largest median share of a corner region above half its heatmap's peak.
MAX_CORNER_SPREAD = 0.028
#: Largest median distance between the corners found on the image and on its mirror image (spacings).
MAX_MIRROR_DISAGREEMENT = 0.12
#: Below this widening from T1–T5 to L1–L5 (or when the evidence is weak) the image is also
#: looked at turned 180°: an upside-down radiograph is a good spine that way up.
UPRIGHT_WIDENING = 1.35


@dataclass(frozen=True)
class SpineEvidence:
    """What the detection saw on one image (see ``landmark_model.model.Evidence``) and the
    shape of the spine it returned."""

    matched_levels: int
    centre_confidence: float
    corner_confidence: float
    corner_spread: float
    extra_peaks: int
    mirror_disagreement: float
    widening: float            # median width L1–L5 / median width T1–T5

    @classmethod
    def of(cls, detection) -> "SpineEvidence":
        """The evidence of a ``Detection``."""
        widths = np.linalg.norm(vertebra_midlines(detection.landmarks.points), axis=1)
        upper = float(np.median(widths[:5]))
        widening = float(np.median(widths[-5:]) / upper) if upper > 0 else 0.0
        return cls(**asdict(detection.evidence), widening=widening)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SpineCheck:
    """The check's decision: ``passed``, else a ``code`` and a ``reason`` in the user's words."""

    passed: bool
    code: str | None = None        # weak | upside_down
    reason: str | None = None
    evidence: SpineEvidence | None = None

    def to_dict(self) -> dict:
        return {"passed": self.passed, "code": self.code, "reason": self.reason,
                "measures": self.evidence.to_dict() if self.evidence else None}


def assess(evidence: SpineEvidence) -> SpineCheck:
    """Whether the evidence is that of an AP spine radiograph the model can measure."""
    weak = []
    if evidence.matched_levels < MIN_MATCHED_LEVELS:
        weak.append(f"only {evidence.matched_levels} of 17 vertebrae found in sequence")
    if evidence.centre_confidence < MIN_CENTRE_CONFIDENCE:
        weak.append(f"vertebra centres weak ({evidence.centre_confidence:.2f}, a radiograph gives "
                    f"{MIN_CENTRE_CONFIDENCE} or more)")
    if evidence.corner_confidence < MIN_CORNER_CONFIDENCE:
        weak.append(f"vertebra corners weak ({evidence.corner_confidence:.2f}, a radiograph gives "
                    f"{MIN_CORNER_CONFIDENCE} or more)")
    if evidence.extra_peaks > MAX_EXTRA_PEAKS:
        weak.append(f"{evidence.extra_peaks} vertebra-like spots off the spine (a radiograph has a few)")
    if evidence.corner_spread > MAX_CORNER_SPREAD:
        weak.append("vertebra corners blurred")
    if evidence.mirror_disagreement > MAX_MIRROR_DISAGREEMENT:
        weak.append("corners found on the image and on its mirror image disagree")
    if weak:
        return SpineCheck(False, "weak", "this does not look like an AP spine radiograph: " + "; ".join(weak),
                          evidence)
    return SpineCheck(True, evidence=evidence)


def might_be_upside_down(evidence: SpineEvidence) -> bool:
    """Whether the image must also be looked at turned 180°: its vertebrae barely widen
    downwards, or the evidence is weak (an upside-down radiograph can be either)."""
    return evidence.widening < UPRIGHT_WIDENING or not assess(evidence).passed


def decide(evidence: SpineEvidence, turned: SpineEvidence | None = None) -> SpineCheck:
    """``assess``, except that an image that is a better spine turned 180° (``turned``, its
    evidence that way up) is upside down."""
    if (turned is not None and assess(turned).passed and turned.widening > evidence.widening
            and turned.corner_confidence > evidence.corner_confidence):
        return SpineCheck(False, "upside_down",
                          "the radiograph looks upside down (the spine reads better turned 180°: its vertebrae "
                          "then widen from T1 to L5): turn it so the head is at the top and try again", evidence)
    return assess(evidence)


def turned_evidence(detector, pixels: np.ndarray) -> SpineEvidence:
    """The evidence of ``pixels`` turned 180°."""
    turned = np.ascontiguousarray(pixels[::-1, ::-1])
    return SpineEvidence.of(detector.detect(turned))


def check_radiograph(detector, pixels: np.ndarray, detection) -> SpineCheck:
    """The spine check of ``detection`` (by ``detector`` on ``pixels``), an upside-down radiograph
    included (detected a second time, turned, only when it ``might_be_upside_down``)."""
    evidence = SpineEvidence.of(detection)
    return decide(evidence, turned_evidence(detector, pixels) if might_be_upside_down(evidence) else None)
