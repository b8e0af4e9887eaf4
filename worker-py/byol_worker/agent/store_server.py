"""The process that hosts an agent's rendezvous stores (rendezvous.py starts it when the agent starts).

Its own process, not a thread of the agent: importing torch takes seconds (5 s on a loaded 2-core host) and
holds the interpreter while it loads libtorch, so done inside the agent it delayed the agent's SIGTERM exit
past the preemption grace period; done on demand it made the next generation wait whenever the agent that
had to host had never hosted before. Here it is paid once, in the background, and never blocks the agent.

Protocol, one line each way: `host <name>` -> `ok <port>` | `err <reason>`; `stop <name>` -> `ok`.
It exits when its stdin closes (the agent stopped or died).
"""
from __future__ import annotations

import datetime
import gc
import sys


def main(host: str) -> int:
    from torch.distributed import TCPStore

    stores: dict[str, object] = {}
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, _, name = line.strip().partition(" ")
        if cmd == "host":
            try:
                if name not in stores:
                    stores[name] = TCPStore(host, 0, is_master=True, wait_for_workers=False,
                                            timeout=datetime.timedelta(seconds=30))
                print(f"ok {stores[name].port}", flush=True)
            except Exception as e:  # e.g. --host is not an address of this machine
                print(f"err {type(e).__name__}: {e}".replace("\n", " "), flush=True)
        elif cmd == "stop":
            stores.pop(name, None)
            gc.collect()  # the server thread stops when the master object is freed
            print("ok", flush=True)
        else:
            print(f"err unknown command {cmd!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
