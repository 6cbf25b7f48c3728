"""Each replica's view of the virtual keys: a dict from key hash to key, kept fresh by polling.

A request costs one SHA-256 and one dict lookup (``lookup``). A thread asks the database every
``poll_interval_seconds`` for rows whose sequence is past the last one seen (an indexed query that returns
nothing when nothing changed) and swaps them in, so a created, updated, rotated or revoked key takes
effect on every replica within one interval. Memory is one entry per active key; revoked keys are dropped.
If the database is unreachable the replica keeps the keys it has (and logs), and catches up once it is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .store import KeyStore, VirtualKey, hash_key

log = logging.getLogger("tierroute.keys")


class KeyRegistry:
    def __init__(self, store: KeyStore, *, poll_interval_seconds: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._interval = poll_interval_seconds
        self._clock = clock
        self._by_hash: dict[str, VirtualKey] = {}
        self._by_caller: dict[str, VirtualKey] = {}
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    @property
    def seq(self) -> int:
        """The last key change this replica has applied."""
        return self._seq

    def __len__(self) -> int:
        return len(self._by_caller)

    def refresh(self) -> int:
        """Apply every change since the last one seen; returns how many."""
        changes = self.store.changes_since(self._seq)
        for key in changes:
            old = self._by_caller.pop(key.caller, None)
            if old is not None:
                self._by_hash.pop(old.key_hash, None)
            if key.revoked_at is None:
                self._by_caller[key.caller] = key
                self._by_hash[key.key_hash] = key
            self._seq = max(self._seq, key.seq)
        return len(changes)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tierroute-keys", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - keep serving with the keys we have
                log.warning("could not refresh virtual keys (keeping the %d known): %s: %s", len(self),
                            type(exc).__name__, exc)

    def lookup(self, token: bytes) -> VirtualKey | None:
        """The active key whose secret is ``token``; None for an unknown or revoked one. Expiry is the caller's
        check (a key expires without a change to its row)."""
        return self._by_hash.get(hash_key(token))

    def by_caller(self, caller: str | None) -> VirtualKey | None:
        return self._by_caller.get(caller) if caller else None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.store.db.close()
