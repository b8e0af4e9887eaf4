"""TCPStores that rank 0's agent hosts, one per (job, generation) (docs/internals.md step 3).

The store is a `torch.distributed.TCPStore` master on port 0 (the OS picks a free port); trainers of the
generation join it as clients with the prefix `gen<g>/`. It lives until the generation is aborted, a newer
generation of the job arrives, or the generation's local trainers have ended (after a short linger, so
that the other ranks can finish their last store calls).

The stores live in a helper process (store_server.py) that every agent starts, and that imports torch, as
soon as the agent starts (`warm_up`): when rank 0's agent was preempted, the next generation's store went
to an agent that had never hosted one, and its cold torch import (5 s on a loaded 2-core host) made
recovery 1.5-3x slower than when another agent was preempted. About 180 MB per agent, once.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import threading

from .logfmt import event

log = logging.getLogger("byol.agent.rendezvous")


class RendezvousHost:
    def __init__(self, host: str, linger_s: float = 5.0) -> None:
        self.host = host
        self.linger_s = linger_s
        self._stores: dict[tuple[str, int], int] = {}  # -> port
        self._timers: dict[tuple[str, int], threading.Timer] = {}
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()  # one request at a time to the store server
        self._server: subprocess.Popen | None = None
        self._ready = False

    def warm_up(self) -> None:
        """Start the store server now, so that it has imported torch before it is needed."""
        with self._io_lock:
            self._start()

    def _start(self) -> None:
        if self._server is not None and self._server.poll() is None:
            return
        # its own process group: a Ctrl-C to the agent's group does not kill the stores before the trainers;
        # it exits when its stdin closes, i.e. with the agent.
        self._server = subprocess.Popen([sys.executable, "-m", "byol_worker.agent.store_server", self.host],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        process_group=0)
        self._ready = False

    def _ask(self, line: str) -> str:
        """One request/answer with the store server (started if needed); raises OSError when it is gone."""
        with self._io_lock:
            self._start()
            srv = self._server
            try:
                if not self._ready:
                    if srv.stdout.readline().strip() != "ready":
                        raise OSError(f"the rendezvous store server exited with code {srv.wait()} while starting")
                    self._ready = True
                srv.stdin.write(line + "\n")
                srv.stdin.flush()
                answer = srv.stdout.readline().strip()
            except (OSError, ValueError) as e:
                raise OSError(f"the rendezvous store server is not answering ({e})") from e
            if not answer:
                raise OSError(f"the rendezvous store server exited with code {srv.wait()}")
            return answer

    @staticmethod
    def _name(job_id: str, generation: int) -> str:
        return f"{generation}/{job_id}".replace(" ", "_").replace("\n", "_")

    def address(self, job_id: str, generation: int) -> str | None:
        with self._lock:
            port = self._stores.get((job_id, generation))
            return f"{self.host}:{port}" if port is not None else None

    def host_store(self, job_id: str, generation: int) -> str:
        """Start the generation's store (idempotent: a repeated request gets the same address)."""
        key = (job_id, generation)
        with self._lock:
            if key in self._stores:
                return f"{self.host}:{self._stores[key]}"
        answer = self._ask(f"host {self._name(job_id, generation)}")
        if not answer.startswith("ok "):
            raise OSError(answer.removeprefix("err "))
        port = int(answer.split()[1])
        with self._lock:
            self._stores[key] = port
        address = f"{self.host}:{port}"
        event(log, "rendezvous_store_started", job=job_id, generation=generation, address=address)
        return address

    def stop(self, job_id: str, generation: int, reason: str) -> bool:
        key = (job_id, generation)
        with self._lock:
            port = self._stores.pop(key, None)
            timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if port is None:
            return False
        try:
            self._ask(f"stop {self._name(job_id, generation)}")
        except OSError as e:  # gone already: so is its store
            event(log, "rendezvous_store_server_gone", logging.WARNING, error=str(e))
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
