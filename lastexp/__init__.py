"""lastexp: the experiment and ablation runner for the LAST skeleton action-recognition models.

Importing the package stays cheap (no torch): composing a config must not pay for it.
"""

import time as _time

__version__ = "0.1.0"
STARTED_NS = _time.time_ns()  # when this process imported lastexp: a newer file is its own
