"""byol worker command line.

One device (standalone, no coordinator):
    python -m byol_worker train --spec examples/quickstart.yaml
Many devices on this host (N trainer processes, gloo on CPU / nccl on CUDA):
    python -m byol_worker train --spec examples/cifar10.yaml --nproc 4 --checkpoint-dir ckpt/cifar10
Resume or stop early:
    python -m byol_worker train --spec job.yaml --resume auto|none|ckpt/cifar10/step-000000500 --max-steps 1000
Under a coordinator, one agent per node (it spawns `trainer` processes itself):
    python -m byol_worker agent --coordinator HOST:50051
Other tools:
    python -m byol_worker trainer --assignment FILE      # one rank; written by an agent or `train`
    python -m byol_worker knn --encoder ENC --data DIR   # kNN accuracy of an encoder
    python -m byol_worker export ...                     # online encoder -> plain PyTorch state dict
    python -m byol_worker bench ...                      # step-rate benchmark
    python -m byol_worker convert-cifar --archive cifar-10-python.tar.gz --out DIR
"""
from __future__ import annotations

import importlib
import sys

# subcommand -> module with main(argv) -> int; imported only when used (torch is slow to import)
COMMANDS = {
    "train": "byol_worker.train.launch_local",
    "trainer": "byol_worker.train.trainer",
    "knn": "byol_worker.evaluate.knn",
    "export": "byol_worker.evaluate.export",
    "bench": "byol_worker.bench",
    "agent": "byol_worker.agent",
    "convert-cifar": "byol_worker.data.convert_cifar",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
            return 2
        return 0 if argv else 2
    try:
        module = importlib.import_module(COMMANDS[argv[0]])
    except ImportError as e:
        print(f"error: command {argv[0]!r} is not available in this install ({e})", file=sys.stderr)
        return 2
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
