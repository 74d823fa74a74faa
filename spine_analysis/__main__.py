"""``python -m spine_analysis`` runs the command line (Slicer's PythonSlicer uses this)."""
import sys

from .cli import main

sys.exit(main())
