"""Results side of lastexp: read the run store, write the ablation and paper tables.

``python -m lastexp.results [--runs DIR] [--out DIR]``; no torch is imported here.
"""

from lastexp.results.report import build_report, write_tables
from lastexp.results.store import Problem, load_store

__all__ = ["Problem", "build_report", "load_store", "write_tables"]
