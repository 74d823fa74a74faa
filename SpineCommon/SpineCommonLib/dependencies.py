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

#: The tasks of the extension's modules.
LANDMARK_DETECTION = "landmark detection"
BODY_SEGMENTATION_UNET = "body segmentation (U-Net)"
BODY_SEGMENTATION_CLASSICAL = "body segmentation (classical)"
MEASURING = "measuring centra"
FRACTURE_DETECTION = "fracture detection"
#: What each task needs besides numpy, SimpleITK and Pillow: the one list the modules check.
TASK_PACKAGES = {
    LANDMARK_DETECTION: ("torch", "monai", "skimage", "pydicom"),
    BODY_SEGMENTATION_UNET: ("torch", "monai"),
    BODY_SEGMENTATION_CLASSICAL: (),
    MEASURING: (),
    # The fracture classifier, and the body network that finds the vertebrae without labels.
    FRACTURE_DETECTION: ("torch", "monai"),
}

_satisfied = set()


class DependencyError(RuntimeError):
    """A required package is missing and was not installed."""


def missingPackages(names):
    """Names from `names` that cannot be imported, without importing anything heavy."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def missingForTask(task):
    """The packages `task` (a key of TASK_PACKAGES) needs that cannot be imported."""
    return missingPackages(TASK_PACKAGES[task])


def ensureDependencies(task, requester="SpineAnalysis"):
    """Make sure the packages `task` (a key of TASK_PACKAGES, e.g. FRACTURE_DETECTION) needs can be imported.

    Asks the user before installing anything. Raises DependencyError if a package is missing and
    cannot be installed, or if the user declines.
    """
    names = TASK_PACKAGES[task]
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
