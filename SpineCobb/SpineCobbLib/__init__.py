"""SpineCobb helpers: the background landmark detection (process) and the MRML result nodes (outputs)."""
