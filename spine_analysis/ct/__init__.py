"""CT side of the engine: vertebra level names (``levels``), per-vertebra bone metrics
(``bone_metrics``) and morphometric fracture grading (``genant``). The CT networks (vertebral
body segmentation, fracture classification) go here, each in a folder of its own on top of
``spine_analysis.ml``."""
