"""`python -m byol_worker.agent ...`, the same as `python -m byol_worker agent ...`."""
import sys

from . import main

sys.exit(main(sys.argv[1:]))
