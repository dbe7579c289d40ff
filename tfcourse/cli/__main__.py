"""``python -m tfcourse.cli``: the same command line, for launchers such as ``torchrun -m tfcourse.cli``."""

import sys

from tfcourse.cli import main

sys.exit(main())
