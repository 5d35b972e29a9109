"""The CLI's log set-up and terminal: repeated lines collapsed, text above a live block."""

from __future__ import annotations

import io
import logging

from twinplane.cli.console import LiveConsole
from twinplane.cli.runtime import CollapsingHandler


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        """Now."""
        return self.now


def _logger(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger("twinplane.test.collapse")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log


def test_repeats_of_a_line_collapse_into_one_count() -> None:
    """200 warnings of one template in the window: the first, then one line with the count."""
    out, clock = io.StringIO(), Clock()
    handler = CollapsingHandler(out, window_s=10, clock=clock)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = _logger(handler)
    for device in range(200):
        log.warning("device %s: no answer; backing off", f"d{device}")
    log.error("something else")  # another template is written at once
    assert out.getvalue().splitlines() == [
        "WARNING device d0: no answer; backing off",
        "ERROR something else",
    ]
    clock.now += 10
    handler.flush_repeats()
    lines = out.getvalue().splitlines()
    assert lines[2] == "WARNING ... and 199 more like 'device d0: no answer; backing off' in 10 s"
    log.warning("device %s: no answer; backing off", "d7")  # a new window: written again
    assert out.getvalue().splitlines()[-1] == "WARNING device d7: no answer; backing off"


def test_a_single_line_has_no_count_and_debug_is_never_collapsed() -> None:
    """A line without repeats gets no count line; debug records are all written."""
    out, clock = io.StringIO(), Clock()
    handler = CollapsingHandler(out, window_s=10, clock=clock)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = _logger(handler)
    log.warning("once")
    for i in range(3):
        log.debug("poll %d", i)
    clock.now += 30
    handler.close()
    assert out.getvalue().splitlines() == ["once", "poll 0", "poll 1", "poll 2"]


def test_close_writes_the_counts_still_held_back() -> None:
    """At exit the counts of an open window are written."""
    out, clock = io.StringIO(), Clock()
    handler = CollapsingHandler(out, window_s=10, clock=clock)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = _logger(handler)
    for _ in range(3):
        log.info("same")
    handler.close()
    assert out.getvalue().splitlines() == ["same", "... and 2 more like 'same' in 10 s"]


def test_text_written_goes_above_the_live_block() -> None:
    """A log line while a summary is shown: erase the block, the line, the block again."""
    term = io.StringIO()
    console = LiveConsole(term)
    console.show(["devices online 3/5", "REST http://x"])
    assert term.getvalue() == "devices online 3/5\nREST http://x\n"
    console.write("WARNING a device failed")  # a partial line waits for its end
    assert term.getvalue().count("WARNING") == 0
    console.write("\n")
    assert term.getvalue().endswith(
        "\x1b[2F\x1b[JWARNING a device failed\ndevices online 3/5\nREST http://x\n"
    )
    console.show(["devices online 5/5", "REST http://x"])
    assert term.getvalue().endswith("\x1b[2F\x1b[Jdevices online 5/5\nREST http://x\n")
    console.release()
    console.write("stopped\n")
    assert term.getvalue().endswith("REST http://x\nstopped\n")  # the block stays, not erased
