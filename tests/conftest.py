"""Make ``tests.cli_runner`` (and the other shared test helpers) importable from any folder.

pytest puts a test module's first folder without ``__init__.py`` on ``sys.path``; for
``tests/images/test_x.py`` that is ``tests/images``, so ``import tests.cli_runner`` failed when
pytest ran from outside the repository root. The repository root is added here once, whatever
the current folder or import mode.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
