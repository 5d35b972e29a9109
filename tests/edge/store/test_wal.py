"""The store's write-ahead log stays bounded under many writes (real SQLite, no clock)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from edge.store.helpers import pragma
from twinplane.edge.store import EdgeStore
from twinplane.edge.store.connection import _CHECKPOINT_PAGES, _WAL_SIZE_LIMIT

ROWS_PER_WRITE = 200
PAD = 975  # a row of 4 x PAD characters fills most of a 4 KiB page


def test_wal_is_checkpointed_and_reused_under_many_writes(tmp_path: Path) -> None:
    """Writes of 1.6x the checkpoint threshold: the WAL never grows past it plus one write."""
    path = tmp_path / "edge.db"
    wal = Path(f"{path}-wal")
    rounds = math.ceil(1.6 * _CHECKPOINT_PAGES / ROWS_PER_WRITE)
    with EdgeStore.open(path) as store:
        page = pragma(path, "page_size")
        assert isinstance(page, int)
        frame = page + 24  # a WAL frame: the page and its header
        sizes = [wal.stat().st_size]
        for round_ in range(rounds):
            body = f'{{"pad":"{f"{round_:04d}" * PAD}"}}'  # every byte changes every round
            store.save_twins((f"default/d{i}", "p", body) for i in range(ROWS_PER_WRITE))
            sizes.append(wal.stat().st_size)
        largest_write = max(b - a for a, b in itertools.pairwise(sizes))
        assert ROWS_PER_WRITE * frame <= largest_write < 2 * ROWS_PER_WRITE * frame
        # Past the threshold a commit checkpoints; the next write starts the WAL over.
        assert max(sizes) <= 32 + _CHECKPOINT_PAGES * frame + largest_write
        assert max(sizes) <= _WAL_SIZE_LIMIT
        assert rounds * ROWS_PER_WRITE * frame > 1.5 * max(sizes)  # it was reused
        assert path.stat().st_size >= ROWS_PER_WRITE * page  # checkpoints reached the database
    assert not wal.exists() or wal.stat().st_size == 0  # the last close checkpoints it away
