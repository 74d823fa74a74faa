"""Helpers of the SpineAnalysis module: what a seed and a segment mean (`seeds`, no Slicer needed) and
the segmentation, metrics and engine jobs of click-to-segment (`centra`)."""
