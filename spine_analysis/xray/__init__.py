"""Radiograph (X-ray) side of the engine: corner landmarks and their level names (``landmarks``),
the Cobb rules (``cobb``), plausibility flags (``quality``), the report and its files
(``report``, ``overlay``), AASCE accuracy measures (``evaluation``), the synthetic radiograph
(``synthetic``) and the landmark network (``landmark_model``)."""
