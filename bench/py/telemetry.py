"""Telemetry ingest benchmark: runs bench/ts/telemetry-ingest.ts (the coordinator's real ingest module under a
Python load generator) and saves its JSON with the machine facts in bench/out/telemetry-ingest.json.

    .venv/bin/python bench/py/telemetry.py [--ranks 64] [--steps 2000] [--rounds 3] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from common import PYTHON, REPO, LoadWatch, log, setup_logging, write_result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    setup_logging()
    cmd = ["node", "--import", "tsx", "bench/ts/telemetry-ingest.ts"]
    cmd += ["--quick"] if a.quick else ["--ranks", str(a.ranks), "--steps", str(a.steps), "--rounds", str(a.rounds)]
    log.info("%s", " ".join(cmd))
    watch = LoadWatch()
    p = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "BYOL_PYTHON": PYTHON})
    if p.returncode != 0:
        log.error("telemetry-ingest.ts exited %d (its error is above)", p.returncode)
        return 1
    r = json.loads(p.stdout)
    write_result("telemetry-ingest" + ("-quick" if a.quick else ""), {"node_command": " ".join(cmd), **r}, watch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
