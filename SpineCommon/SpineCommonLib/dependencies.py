"""Python packages the engine needs, checked on first use (never at import time).

torch comes from the PyTorch extension (PyTorchUtils), which picks the right build (CUDA/CPU) for
the computer. The other packages are installed with pip after the user agrees. Slicer already
ships numpy, SimpleITK, pydicom and Pillow.
"""
import importlib.util
import logging

import slicer
from slicer.i18n import tr as _

#: Import name -> pip requirement. "--no-deps" keeps pip from replacing PyTorch's torch build.
PIP_REQUIREMENTS = {
    "monai": "monai>=1.3 --no-deps",
    "skimage": "scikit-image>=0.21",
    "pydicom": "pydicom>=2.4",
}
MINIMUM_TORCH_VERSION = "2.1"

#: What each task needs besides numpy, SimpleITK and Pillow.
LANDMARK_DETECTION = ("torch", "monai", "skimage", "pydicom")
#: Bone metrics and Genant grading need nothing Slicer does not ship; the CT network will add to this.
CT_METRICS = ()

_satisfied = set()


class DependencyError(RuntimeError):
    """A required package is missing and was not installed."""


def missingPackages(names):
    """Names from `names` that cannot be imported, without importing anything heavy."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def ensureDependencies(names, requester="SpineAnalysis"):
    """Make sure the packages in `names` (see LANDMARK_DETECTION, CT_METRICS) can be imported.

    Asks the user before installing anything. Raises DependencyError if a package is missing and
    cannot be installed, or if the user declines.
    """
    key = tuple(sorted(names))
    if key in _satisfied:
        return

    torchLogic = None
    needTorch = False
    if "torch" in names:
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            raise DependencyError(_(
                "{requester} needs the PyTorch extension. Install 'PyTorch' from the Extensions Manager, "
                "restart Slicer and try again.").format(requester=requester)) from None
        torchLogic = PyTorchUtils.PyTorchUtilsLogic()
        needTorch = not torchLogic.torchInstalled()

    missing = missingPackages([name for name in names if name != "torch"])
    if not needTorch and not missing:
        _satisfied.add(key)
        return

    toInstall = (["torch (PyTorch)"] if needTorch else []) + [PIP_REQUIREMENTS[name].split()[0] for name in missing]
    if slicer.app.testingEnabled():
        raise DependencyError(_("Missing Python packages: {packages}").format(packages=", ".join(toInstall)))
    if not slicer.util.confirmOkCancelDisplay(
            _("{requester} needs additional Python packages. Installing them needs a network connection "
              "and may take several minutes. Click OK to install them now.").format(requester=requester),
            _("Install Python packages"),
            detailedText=_("Packages to install: {packages}").format(packages=", ".join(toInstall))):
        raise DependencyError(_("Installation of the required Python packages was cancelled."))

    with slicer.util.WaitCursor():
        if needTorch:
            logging.info("Installing PyTorch through the PyTorch extension...")
            if torchLogic.installTorch(askConfirmation=False,
                                       torchVersionRequirement=f">={MINIMUM_TORCH_VERSION}") is None:
                raise DependencyError(_("PyTorch could not be installed. Use the 'PyTorch Util' module to install it."))
        for name in missing:
            logging.info(f"Installing {PIP_REQUIREMENTS[name]}...")
            slicer.util.pip_install(PIP_REQUIREMENTS[name])

    importlib.invalidate_caches()
    stillMissing = missingPackages([name for name in names if name != "torch"])
    if stillMissing:
        raise DependencyError(_("Installation failed for: {packages}. See the Python console for details.").format(
            packages=", ".join(stillMissing)))
    _satisfied.add(key)
