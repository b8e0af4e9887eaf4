"""The agent's send queue: a thread-safe FIFO that outlives one gRPC stream.

Reports made while the stream is down wait here and go out after the next Hello. A message that a dying
stream took but could not send is put back at the front (`unget`). When full, the oldest Progress is
dropped first (the next one supersedes it); other reports are kept.
"""
from __future__ import annotations

import collections
import threading

from ..proto import agent_pb2


class Outbox:
    def __init__(self, max_len: int = 10000) -> None:
        self._items: collections.deque[agent_pb2.AgentMessage] = collections.deque()
        self._cond = threading.Condition()
        self._max_len = max_len
        self.dropped = 0

    def put(self, msg: agent_pb2.AgentMessage) -> None:
        with self._cond:
            if len(self._items) >= self._max_len:
                self._make_room()
            self._items.append(msg)
            self._cond.notify_all()

    def _make_room(self) -> None:
        for i, m in enumerate(self._items):
            if m.WhichOneof("kind") == "progress":
                del self._items[i]
                self.dropped += 1
                return
        self._items.popleft()
        self.dropped += 1

    def unget(self, msg: agent_pb2.AgentMessage) -> None:
        with self._cond:
            self._items.appendleft(msg)
            self._cond.notify_all()

    def get(self, timeout: float) -> agent_pb2.AgentMessage | None:
        """The oldest message, or None after `timeout` seconds."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            msg = self._items.popleft()
            self._cond.notify_all()  # wakes wait_empty
            return msg

    def wait_empty(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._items, timeout)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
