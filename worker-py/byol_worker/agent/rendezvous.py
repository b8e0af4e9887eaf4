"""TCPStores that rank 0's agent hosts, one per (job, generation) (docs/internals.md step 3).

The store is a `torch.distributed.TCPStore` master on port 0 (the OS picks a free port); trainers of the
generation join it as clients with the prefix `gen<g>/`. It lives until the generation is aborted, a newer
generation of the job arrives, or the generation's local trainers have ended (after a short linger, so
that the other ranks can finish their last store calls). Dropping the last reference shuts the server.

Every agent imports torch.distributed in the background when it starts (`warm_up`), not when it is first
asked to host: when rank 0's agent is preempted, the next generation's store goes to an agent that may
never have hosted one, and a cold torch import there (5 s on a loaded 2-core host) made recovery 1.5-3x
slower than when another agent was preempted. The cost: about 180 MB and 1-2 CPU-s per agent, once.
"""
from __future__ import annotations

import datetime
import gc
import logging
import threading
import time

from .logfmt import event

log = logging.getLogger("byol.agent.rendezvous")


class RendezvousHost:
    def __init__(self, host: str, linger_s: float = 5.0) -> None:
        self.host = host
        self.linger_s = linger_s
        self._stores: dict[tuple[str, int], object] = {}
        self._timers: dict[tuple[str, int], threading.Timer] = {}
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Import torch.distributed on a daemon thread; host_store then waits for it at most (import lock)."""
        def load() -> None:
            t0 = time.monotonic()
            try:
                from torch.distributed import TCPStore  # noqa: F401
            except Exception as e:  # host_store reports it where it matters
                event(log, "rendezvous_warm_up_failed", logging.WARNING, error=str(e))
                return
            event(log, "rendezvous_warm", seconds=round(time.monotonic() - t0, 2))
        threading.Thread(target=load, name="rendezvous-warm-up", daemon=True).start()

    def address(self, job_id: str, generation: int) -> str | None:
        with self._lock:
            store = self._stores.get((job_id, generation))
            return f"{self.host}:{store.port}" if store is not None else None

    def host_store(self, job_id: str, generation: int) -> str:
        """Start the generation's store (idempotent: a repeated request gets the same address)."""
        key = (job_id, generation)
        with self._lock:
            if key in self._stores:
                return f"{self.host}:{self._stores[key].port}"
        from torch.distributed import TCPStore  # lazily: only rank 0's agent needs torch here

        store = TCPStore(self.host, 0, is_master=True, wait_for_workers=False,
                         timeout=datetime.timedelta(seconds=30))
        with self._lock:
            self._stores[key] = store
        address = f"{self.host}:{store.port}"
        event(log, "rendezvous_store_started", job=job_id, generation=generation, address=address)
        return address

    def stop(self, job_id: str, generation: int, reason: str) -> bool:
        key = (job_id, generation)
        with self._lock:
            store = self._stores.pop(key, None)
            timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if store is None:
            return False
        del store
        gc.collect()  # the server thread stops when the master object is freed
        event(log, "rendezvous_store_stopped", job=job_id, generation=generation, reason=reason)
        return True

    def stop_later(self, job_id: str, generation: int, reason: str) -> None:
        """Stop after `linger_s`, unless stopped (or rescheduled) first."""
        key = (job_id, generation)
        with self._lock:
            if key not in self._stores:
                return
            old = self._timers.pop(key, None)
            timer = threading.Timer(self.linger_s, self.stop, args=(job_id, generation, reason))
            timer.daemon = True
            self._timers[key] = timer
        if old is not None:
            old.cancel()
        timer.start()

    def stop_older(self, job_id: str, generation: int) -> None:
        """Stop every store of `job_id` older than `generation` (that generation is fenced)."""
        with self._lock:
            old = [g for (j, g) in self._stores if j == job_id and g < generation]
        for g in old:
            self.stop(job_id, g, f"generation {generation} replaced it")

    def stop_all(self, reason: str) -> None:
        with self._lock:
            keys = list(self._stores)
        for job_id, g in keys:
            self.stop(job_id, g, reason)
