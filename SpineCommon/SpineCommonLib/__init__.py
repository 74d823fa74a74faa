"""Slicer-side helpers shared by the SpineAnalysis, SpineCobb and SpineFracture modules.

They only move data between MRML nodes, the GUI and the engine (`spine_analysis`); no computation lives here.
"""
