"""The byol agent (one per node or pod): see docs/internals.md "Agent <-> coordinator" and
"Agent <-> trainer". Run it with `python -m byol_worker agent --coordinator HOST:PORT`.
"""
from .cli import main

__all__ = ["main"]
