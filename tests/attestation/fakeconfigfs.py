"""A fake configfs-tsm tree, driven by a thread that plays the kernel.

Real configfs fills a new report directory with its attribute files and makes ``outblob``
return the token for what was written to ``inblob``; ``rmdir`` then removes the lot. The fake
does the same with plain files: when a directory appears under ``report/`` it writes
``provider`` and makes ``outblob`` a FIFO. Opening ``outblob`` for reading blocks until the
"kernel" answers; it then reads ``inblob``, removes its files (so the caller's ``rmdir`` works
as on configfs) and writes the token built for that nonce.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPORT = "sys/kernel/config/tsm/report"
REALM_GUEST = "sys/firmware/cca/realm_guest"


class FakeTsm:
    def __init__(
        self,
        root: Path,
        *,
        provider: str = "arm_cca_guest",
        realm_guest: str | None = "1",
        respond: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.root = root
        self.reports = root / REPORT
        self.reports.mkdir(parents=True)
        if realm_guest is not None:
            (root / REALM_GUEST).parent.mkdir(parents=True)
            (root / REALM_GUEST).write_text(realm_guest + "\n")
        self.provider = provider
        self.respond = respond
        self.inblobs: list[bytes] = []
        self.created: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeTsm:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        # Unblock a kernel thread still waiting on a FIFO nobody opened.
        for name in self.created:
            fifo = self.reports / name / "outblob"
            if fifo.exists():
                try:
                    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
                    os.close(fd)
                except OSError:
                    pass
        self._thread.join(timeout=5)

    def _run(self) -> None:
        seen: set[str] = set()
        while not self._stop.is_set():
            for entry in self.reports.iterdir():
                if entry.name not in seen and entry.is_dir():
                    seen.add(entry.name)
                    self.created.append(entry.name)
                    self._populate(entry)
                    if self.respond is not None:
                        self._answer(entry)
            time.sleep(0.001)

    def _populate(self, report: Path) -> None:
        if self.respond is not None:
            os.mkfifo(report / "outblob")
        (report / "generation").write_text("0\n")
        # Atomically, so the reader never sees an empty provider file.
        (report / ".provider").write_text(self.provider + "\n")
        (report / ".provider").replace(report / "provider")

    def _answer(self, report: Path) -> None:
        assert self.respond is not None
        fd = os.open(report / "outblob", os.O_WRONLY)  # blocks until the reader opens it
        try:
            nonce = (report / "inblob").read_bytes() if (report / "inblob").exists() else b""
            self.inblobs.append(nonce)
            for name in ("inblob", "provider", "generation", "outblob"):
                (report / name).unlink(missing_ok=True)
            if not self._stop.is_set():
                os.write(fd, self.respond(nonce))
        finally:
            os.close(fd)
