"""Every module's own ScriptedLoadableModuleTest, run as Slicer's Reload and Test runs it, on real MRML."""
import pytest

from harness import PROJECT_MODULES


@pytest.mark.parametrize("moduleName", PROJECT_MODULES)
def test_module_self_test_passes(app, scene, moduleName):
    import slicer

    slicer.selfTests[moduleName]()
    assert [dialog.text for dialog in app.errors()] == []
