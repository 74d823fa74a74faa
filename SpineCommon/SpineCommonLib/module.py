"""What every module of the extension says about itself, in one place: category, contributors,
the documentation link and the acknowledgement."""
from slicer.i18n import tr as _
from slicer.i18n import translate

DOCUMENTATION_URL = "https://github.com/spine-analysis/SlicerSpineAnalysis"


def describeModule(parent, title, helpText, acknowledgement="", hidden=False):
    """Fill a module's `parent` (qSlicerScriptedLoadableModule): `title`, `helpText` (the documentation
    link is appended), the extension's category and contributors, and the common acknowledgement
    followed by the module's own (`acknowledgement`, e.g. the method it follows)."""
    parent.title = title
    parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
    parent.dependencies = []
    parent.contributors = ["SpineAnalysis developers"]
    parent.hidden = hidden
    parent.helpText = (helpText.strip() + "\n"
                       + _('See the <a href="{url}">documentation</a>.').format(url=DOCUMENTATION_URL))
    parent.acknowledgementText = " ".join(text for text in (_(
        "Developed by the SpineAnalysis developers. Computation is done by the open-source "
        "<code>spine_analysis</code> Python package bundled with this extension. Not a medical device: "
        "results must be reviewed by a clinician."), acknowledgement.strip()) if text)
