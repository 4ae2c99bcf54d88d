"""``python -m kubevirt_cca`` runs the ``kubevirt-cca`` command."""

import sys

from kubevirt_cca.cli import main

sys.exit(main())
