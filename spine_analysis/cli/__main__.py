"""``python -m spine_analysis.cli`` runs the command line, as ``python -m spine_analysis`` does."""
import sys

from . import main

sys.exit(main())
