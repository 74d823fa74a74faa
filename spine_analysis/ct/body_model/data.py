"""Training cases for the body network: the labelled scans of ``spine_analysis.ct.scans`` as they
are, each vertebra with its body and centrum."""
from ..scans import Scan, VertebraLabels, load_scans

__all__ = ["Scan", "VertebraLabels", "load_scans"]
