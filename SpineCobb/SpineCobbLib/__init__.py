"""SpineCobb helpers: the engine's cobb job, read without Slicer (detection), the MRML result nodes (outputs)
and the module's tests (testing)."""
