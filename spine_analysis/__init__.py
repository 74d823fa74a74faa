"""SpineAnalysis engine: quantitative spine imaging without Slicer.

Cobb angles from AP radiographs (landmark cascade + geometry), CT vertebral body metrics
and fracture grading. The Slicer modules and the ``spine-analysis`` command line are thin
front ends over this package.
"""
__version__ = "0.1.0"
