"""Concurrency: batch calls release the GIL, and one engine is safe from several threads."""

from __future__ import annotations

import asyncio
import itertools
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import reference as ref
from twinplane.twin import Changes, Engine, PropertySpec

from .engine_strategies import DesiredUpdate, assert_same_changes

pytestmark = pytest.mark.engine

SPECS: list[PropertySpec] = [
    {"name": f"p{i}", "type": "DOUBLE", "visitor": {"register": "HoldingRegister", "offset": 4 * i}}
    for i in range(10)
]
DEVICES = 20_000


@pytest.fixture(scope="module")
def big_engine() -> Engine:
    """An engine of 20,000 devices x 10 properties."""
    engine = Engine()
    for d in range(DEVICES):
        engine.upsert_device(f"ns/d{d}", SPECS)
    return engine


def fill(engine: Engine, ts: int) -> None:
    """One sample for every property of every device."""
    values = [(i, float(ts + i)) for i in range(10)]
    for d in range(DEVICES):
        engine.ingest_values(d, values, ts)


def ran_alongside(
    windows: list[tuple[float, float]], stamps: list[float], shortest: float = 0.01
) -> bool:
    """Whether the stamping thread kept running during each call.

    Its longest pause inside a call's window must be well under the call's length. A call that
    holds the GIL pauses it for the whole call; a call that releases it lets it go on, pausing
    only for the GIL's switch interval (and while the call turns its result into Python
    objects). A window must be ``shortest`` long at least, well above the switch interval.
    """
    pauses = list(itertools.pairwise(stamps))
    for start, end in windows:
        assert end - start > shortest, "a call too short to tell"
        inside = [min(b, end) - max(a, start) for a, b in pauses if a < end and b > start]
        if max(inside, default=end - start) >= (end - start) / 2:
            return False
    return True


Step = tuple[Callable[[], object], Callable[[], object]]
"""Work before a timed call (outside its window), and the call."""


def run_with_ticker(steps: list[Step]) -> tuple[list[tuple[float, float]], list[float]]:
    """Runs the steps in a worker thread while this thread keeps running Python code.

    Returns the timed calls' windows and this thread's time stamps.
    """
    windows: list[tuple[float, float]] = []
    done = threading.Event()

    def worker() -> None:
        try:
            for prepare, call in steps:
                prepare()
                start = time.perf_counter()
                call()
                windows.append((start, time.perf_counter()))
        finally:
            done.set()

    thread = threading.Thread(target=worker)
    stamps: list[float] = []
    thread.start()
    while not done.is_set():
        stamps.append(time.perf_counter())
    thread.join()
    return windows, stamps


@pytest.fixture(autouse=True)
def quick_gil_switches() -> Iterator[None]:
    """Hand the GIL over every millisecond, so a thread waiting for it pauses only briefly."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    yield
    sys.setswitchinterval(before)


def releases_gil(steps: list[Step], attempts: int = 3) -> bool:
    """Whether the steps' calls let another thread run meanwhile.

    A busy machine gets another try or two: only a release of the GIL can ever pass.
    """
    return any(ran_alongside(*run_with_ticker(steps)) for _ in range(attempts))


def test_the_gil_check_sees_a_call_that_holds_the_gil() -> None:
    """The check itself: a long C call that keeps the GIL fails it, a sleep passes it."""

    def nothing() -> None:
        pass

    assert not releases_gil([(nothing, lambda: sum(range(3_000_000)))] * 3, attempts=1)
    assert releases_gil([(nothing, lambda: time.sleep(0.05))] * 3)


def test_report_and_encoders_release_the_gil(big_engine: Engine) -> None:
    """While report, to_mqtt and to_dmi run in a thread, other Python code keeps running."""
    changes: list[Changes] = []

    def nothing() -> None:
        pass

    reports: list[Step] = [
        (lambda t=t: fill(big_engine, t), lambda: changes.append(big_engine.report()))  # type: ignore[misc]
        for t in range(3)
    ]
    assert releases_gil(reports), "report held the GIL"
    assert len(changes[-1]) == DEVICES * 10
    for name in ("to_mqtt", "to_dmi"):
        encode = getattr(changes[-1], name)
        assert releases_gil([(nothing, encode)] * 3), f"{name} held the GIL"


def test_batch_ingest_and_encoded_report_release_the_gil(big_engine: Engine) -> None:
    """While ingest_frames and report_encoded run in a thread, other Python code keeps running."""
    devices = list(range(DEVICES)) * 4  # every device read four times: a call long enough
    blobs = [random.Random(t).randbytes(80 * len(devices)) for t in range(3)]
    frames = [[blob[80 * i : 80 * (i + 1)] for i in range(len(devices))] for blob in blobs]

    def nothing() -> None:
        pass

    ingests: list[Step] = [
        (nothing, lambda t=t: big_engine.ingest_frames(devices, frames[t], t))  # type: ignore[misc]
        for t in range(3)
    ]
    assert releases_gil(ingests), "ingest_frames held the GIL"
    reports: list[Step] = [
        (lambda t=t: fill(big_engine, t + 10), big_engine.report_encoded)  # type: ignore[misc]
        for t in range(3)
    ]
    assert releases_gil(reports), "report_encoded held the GIL"


async def test_to_thread_keeps_the_event_loop_free(big_engine: Engine) -> None:
    """Awaiting asyncio.to_thread(engine.report) lets the event loop run other tasks."""
    # A fast machine reports 200,000 properties in under 10 ms: a 1 ms switch interval keeps
    # such a window long enough to tell a released GIL from a held one.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        for attempt in range(3):
            if await _loop_ran_alongside(big_engine, attempt):
                return
    finally:
        sys.setswitchinterval(switch)
    pytest.fail("the event loop stalled while the engine worked in a thread")


async def _loop_ran_alongside(engine: Engine, attempt: int) -> bool:
    """One attempt of the test above: report and encode in threads while a task ticks."""
    ticks: list[float] = []
    running = True

    async def ticker() -> None:
        while running:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0)

    fill(engine, attempt)
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = time.perf_counter()
    changes = await asyncio.to_thread(engine.report)
    middle = time.perf_counter()
    await asyncio.to_thread(changes.to_mqtt)
    windows = [(start, middle), (middle, time.perf_counter())]
    running = False
    await task
    return ran_alongside(windows, ticks, shortest=0.004)


def own_device_run(engine: Engine, worker: int, seed: int) -> tuple[list[Any], dict[str, Any]]:
    """A thread's run over devices of its own, mirrored on a private reference engine.

    Returns the steps where the engine differed from the reference, and the reference's twins.
    """
    rng = random.Random(seed)
    model = ref.ReferenceEngine()
    ids = [f"w{worker}/d{i}" for i in range(3)]
    for device in ids:
        engine.upsert_device(device, SPECS)
        model.upsert_device(device, SPECS)

    def samples(e: Engine | ref.ReferenceEngine, device: str, step: int, frame: bytes) -> None:
        if isinstance(e, Engine) and step % 2:  # the batch call, as the frame call would
            e.ingest_frames([e.device_index(device)], [frame], step)
        else:
            e.ingest_frame(e.device_index(device), "HoldingRegister", 0, frame, step)
        e.ingest_values(e.device_index(device), [(step % 10, float(step % 3))], step)

    def churn(e: Engine, step: int) -> None:
        e.upsert_device(f"w{worker}/scratch", SPECS[: 1 + step % 9])
        e.remove_device(f"w{worker}/scratch")
        e.stats()

    mismatches: list[Any] = []
    for step in range(150):
        device = rng.choice(ids)
        action = rng.choice(["samples", "report", "mapper", "desired", "churn"])
        pair: tuple[Changes, ref.ReferenceChanges] | None = None
        if action == "samples":
            frame = rng.randbytes(80)
            samples(engine, device, step, frame)
            samples(model, device, step, frame)
        elif action == "report":
            pair = (
                engine.report_devices([engine.device_index(d) for d in ids]),
                model.report_devices([model.device_index(d) for d in ids]),
            )
        elif action == "mapper":
            batch = [(f"p{rng.randrange(10)}", str(rng.randrange(3)), step)]
            pair = engine.apply_reported(device, batch), model.apply_reported(device, batch)
        elif action == "desired":
            update: DesiredUpdate = {f"p{rng.randrange(10)}": float(rng.randrange(3))}
            pair = engine.set_desired(device, update, step), model.set_desired(device, update, step)
        else:
            churn(engine, step)
        if pair and (pair[0].to_list(), pair[0].to_dmi()) != (pair[1].to_list(), pair[1].to_dmi()):
            mismatches.append((step, action))
        if engine.twins(device) != model.twins(device):
            mismatches.append((step, "twins"))
    return mismatches, {d: model.twins(d) for d in ids}


def test_one_engine_is_safe_from_several_threads() -> None:
    """Threads on their own devices of one shared engine each agree with a reference."""
    engine = Engine()
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda w: own_device_run(engine, w, 1000 + w), range(4)))
    for worker, (mismatches, twins) in enumerate(runs):
        assert mismatches == [], f"worker {worker}"
        for device, twin in twins.items():
            assert engine.twins(device) == twin
    assert len(engine) == 4 * 3


def test_changes_are_shareable_between_threads() -> None:
    """One Changes object encodes the same bytes from several threads at once."""
    engine = Engine()
    model = ref.ReferenceEngine()
    for e in (engine, model):
        for d in range(200):
            e.upsert_device(f"ns/d{d}", SPECS)
            e.ingest_values(d, [(i, float(d + i)) for i in range(10)], d)
    changes, want = engine.report(), model.report()
    assert_same_changes(changes, want)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: changes.to_dmi(), range(8)))
    assert all(r == want.to_dmi() for r in results)


DEADLOCK = textwrap.dedent(
    """
    import sys, threading, time
    from collections.abc import Mapping
    from twinplane.twin import Engine

    engine = Engine()
    dev = engine.upsert_device("d", [{"name": "x", "type": "INT"}])

    def slow_values():  # a driver's generator; sleeping releases the GIL
        for i in range(5):
            time.sleep(0.01)
            yield (0, i)

    class SlowState(Mapping):  # a stored twin read lazily; each lookup releases the GIL
        def __init__(self, state):
            self.state = state

        def __getitem__(self, key):
            time.sleep(0.01)
            return self.state[key]

        def __iter__(self):
            return iter(self.state)

        def __len__(self):
            return len(self.state)

    stop = threading.Event()

    def other():
        while not stop.is_set():
            engine.stats()

    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    if sys.argv[1] == "ingest_values":
        engine.ingest_values(dev, slow_values(), 1)
    else:
        engine.restore("d", "x", SlowState({"reported": {"value": "5", "timestamp": 1}}))
    stop.set()
    thread.join()
    """
)


@pytest.mark.parametrize("method", ["ingest_values", "restore"])
def test_python_code_run_by_an_argument_does_not_deadlock(method: str) -> None:
    """A call whose argument runs Python code completes while another thread uses the engine.

    The argument (a generator, a lazy mapping) releases the GIL; the engine reads it before
    taking its lock, so the other thread's calls neither block it nor hold the GIL waiting.
    """
    subprocess.run([sys.executable, "-c", DEADLOCK, method], check=True, timeout=10)  # noqa: S603 - our script
