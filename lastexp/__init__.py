"""lastexp: the experiment and ablation runner for the LAST skeleton action-recognition models.

Importing the package stays cheap (no torch): composing a config must not pay for it.
"""

__version__ = "0.1.0"
