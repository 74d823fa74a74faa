"""Helpers of the SpineFracture module: what the engine's fracture job is sent and what its answer means
(`findings`, no Slicer needed) and the MRML nodes that show a result (`outputs`)."""
