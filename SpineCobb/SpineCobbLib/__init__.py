"""SpineCobb helpers: the engine's landmark job (detection), the MRML result nodes (outputs) and the
module's tests (testing)."""
