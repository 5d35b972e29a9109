"""The simulator's firmware transfer block, driven by pymodbus's client (docs/upgrades.md).

pymodbus is a Modbus implementation that is not ours: its client frames the requests and its
RTU framer computes the chunks' CRC-16. Each test runs a :class:`ModbusSimulator` with three
units on one free loopback port and short reboots.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import zlib
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import ExceptionResponse

from twinplane.sim.firmware import DEFAULT_BASE, Status, crc16
from twinplane.sim.modbus import ModbusSimulator, SimFaults

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"
B = DEFAULT_BASE
UNIT = 1
CHUNK = 200
REBOOT = 0.3
IMAGE = bytes((i * 7 + i // 256) & 0xFF for i in range(4096 + 77))
"""A ~4 KiB image whose size is not a multiple of the chunk (the last chunk is odd-sized)."""
V2 = 0x0002_0000


@pytest.fixture
async def sim() -> AsyncIterator[ModbusSimulator]:
    """Three units on a free port, 20 ordinary registers each, values frozen."""
    async with ModbusSimulator(3, host=HOST, port=0, registers=20, rate=0) as s:
        yield s


@pytest.fixture
async def client(sim: ModbusSimulator) -> AsyncIterator[AsyncModbusTcpClient]:
    """The pymodbus client on the simulator's port; a short timeout for the silent windows."""
    c = AsyncModbusTcpClient(HOST, port=sim.port, timeout=0.2, retries=0)
    assert await c.connect()
    try:
        yield c
    finally:
        c.close()


def u32(value: int) -> list[int]:
    """A uint32 as two registers, high word first."""
    return [value >> 16 & 0xFFFF, value & 0xFFFF]


def chunk_registers(offset: int, data: bytes) -> list[int]:
    """CHUNK_OFFSET, CHUNK_LENGTH, CHUNK_CRC16 and the data, padded, as registers."""
    padded = data + b"\0" * (len(data) & 1)
    words = [int.from_bytes(padded[i : i + 2], "big") for i in range(0, len(padded), 2)]
    return [*u32(offset), len(data), pymodbus_crc16(data), *words]


def pymodbus_crc16(data: bytes) -> int:
    """The CRC-16 as pymodbus's RTU framer computes it.

    ``compute_CRC`` gives the two bytes in their RTU wire order (low byte first) read as a
    big-endian number; CHUNK_CRC16 holds the CRC's value, so the bytes are swapped back.
    """
    wire = FramerRTU.compute_CRC(data)
    return (wire & 0xFF) << 8 | wire >> 8


async def read_block(c: AsyncModbusTcpClient, unit: int = UNIT) -> dict[str, int]:
    """ACTIVE_VERSION, STAGED_VERSION, STATUS and NEXT_OFFSET."""
    rr = await c.read_holding_registers(B, count=7, device_id=unit)
    assert not rr.isError(), rr
    r = rr.registers
    return {
        "active": r[0] << 16 | r[1],
        "staged": r[2] << 16 | r[3],
        "status": r[4],
        "next": r[5] << 16 | r[6],
    }


async def begin(
    c: AsyncModbusTcpClient, image: bytes = IMAGE, version: int = V2, unit: int = UNIT
) -> None:
    """Writes IMAGE_SIZE, IMAGE_CRC32, TARGET_VERSION, then BEGIN."""
    params = [*u32(len(image)), *u32(zlib.crc32(image)), *u32(version)]
    assert not (await c.write_registers(B + 7, params, device_id=unit)).isError()
    assert not (await c.write_register(B + 13, 1, device_id=unit)).isError()


async def send(c: AsyncModbusTcpClient, offset: int, data: bytes, unit: int = UNIT) -> object:
    """One chunk; the response (or exception response)."""
    return await c.write_registers(B + 14, chunk_registers(offset, data), device_id=unit)


async def send_from(
    c: AsyncModbusTcpClient, offset: int, image: bytes = IMAGE, unit: int = UNIT
) -> int:
    """Sends the image from ``offset`` to the end; returns the bytes sent."""
    sent = 0
    for at in range(offset, len(image), CHUNK):
        rr = await send(c, at, image[at : at + CHUNK], unit)
        assert not isinstance(rr, ExceptionResponse), rr
        sent += len(image[at : at + CHUNK])
    return sent


async def commit_and_wait(c: AsyncModbusTcpClient, sim: ModbusSimulator) -> None:
    """COMMIT; the unit is silent while it reboots, then answers again."""
    assert not (await c.write_register(B + 13, 2, device_id=UNIT)).isError()
    assert sim.rebooting(UNIT)
    with pytest.raises(ModbusIOException):
        await c.read_holding_registers(B, count=1, device_id=UNIT)
    await wait_awake(c)


async def wait_awake(c: AsyncModbusTcpClient) -> None:
    """Polls until the unit answers again (pymodbus reconnects after its timeout)."""
    for _ in range(50):
        await asyncio.sleep(0.05)
        if not c.connected:
            await c.connect()
        try:
            rr = await c.read_holding_registers(B, count=1, device_id=UNIT)
        except ModbusIOException:
            continue
        if not rr.isError():
            return
    pytest.fail("the unit did not come back")


async def test_full_transfer_commit_reboot(
    sim: ModbusSimulator, client: AsyncModbusTcpClient
) -> None:
    """A 4 KiB image in chunks, COMMIT, a silent reboot, then ACTIVE_VERSION is the new one."""
    sim.faults.firmware(unit=UNIT, reboot=REBOOT)
    assert await read_block(client) == {"active": 0x0001_0000, "staged": 0, "status": 0, "next": 0}
    await begin(client)
    assert (await read_block(client))["status"] == Status.RECEIVING
    await send_from(client, 0)
    block = await read_block(client)
    assert block["next"] == len(IMAGE)
    assert zlib.crc32(sim.firmware(UNIT).image) == zlib.crc32(IMAGE)
    await commit_and_wait(client, sim)
    assert await read_block(client) == {"active": V2, "staged": 0, "status": 0, "next": 0}


async def test_resume_after_power_loss(sim: ModbusSimulator, client: AsyncModbusTcpClient) -> None:
    """A power loss keeps what was acknowledged; the host resumes from NEXT_OFFSET, not 0."""
    sim.faults.apply(f"unit={UNIT}:powerloss=2100:reboot={int(REBOOT * 1000)}ms")
    await begin(client)
    acknowledged = 0
    for at in range(0, len(IMAGE), CHUNK):
        try:
            await send(client, at, IMAGE[at : at + CHUNK])
        except ModbusIOException:  # the chunk that meets the power loss: no answer
            break
        acknowledged = at + CHUNK
    assert sim.rebooting(UNIT)
    await wait_awake(client)
    block = await read_block(client)
    assert block == {"active": 0x0001_0000, "staged": 0, "status": 1, "next": acknowledged}
    assert 0 < acknowledged < 2100
    await begin(client)  # the same transfer again: a resume, NEXT_OFFSET kept
    assert (await read_block(client))["next"] == acknowledged
    sent = await send_from(client, acknowledged)
    assert sent == len(IMAGE) - acknowledged
    assert sim.firmware(UNIT).chunks_applied == -(-len(IMAGE) // CHUNK)
    assert zlib.crc32(sim.firmware(UNIT).image) == zlib.crc32(IMAGE)
    await commit_and_wait(client, sim)
    assert (await read_block(client))["active"] == V2


async def test_bad_crc_chunk_then_resend(
    sim: ModbusSimulator, client: AsyncModbusTcpClient
) -> None:
    """The 3rd chunk corrupted on receipt answers exception 3, STATUS 5; its resend is taken."""
    sim.faults.firmware(unit=UNIT, bad_chunk=3)
    await begin(client)
    await send_from(client, 0, IMAGE[: 2 * CHUNK])
    rr = await send(client, 2 * CHUNK, IMAGE[2 * CHUNK : 3 * CHUNK])
    assert isinstance(rr, ExceptionResponse)
    assert rr.exception_code == 3
    assert (await read_block(client))[("status")] == Status.CHUNK_CRC_ERROR
    assert (await read_block(client))["next"] == 2 * CHUNK
    await send_from(client, 2 * CHUNK)
    assert (await read_block(client))["status"] == Status.RECEIVING
    assert zlib.crc32(sim.firmware(UNIT).image) == zlib.crc32(IMAGE)


async def test_chunk_with_a_wrong_crc16(client: AsyncModbusTcpClient) -> None:
    """A chunk whose CRC-16 does not match its bytes is refused with exception 3."""
    await begin(client)
    regs = chunk_registers(0, IMAGE[:CHUNK])
    regs[3] ^= 1
    rr = await client.write_registers(B + 14, regs, device_id=UNIT)
    assert isinstance(rr, ExceptionResponse)
    assert rr.exception_code == 3
    assert (await read_block(client))["status"] == Status.CHUNK_CRC_ERROR


async def test_boot_failure_keeps_the_old_image(
    sim: ModbusSimulator, client: AsyncModbusTcpClient
) -> None:
    """An image that fails to boot: the unit comes back on the old version with STATUS 7."""
    sim.faults.apply(f"unit={UNIT}:bootfail:reboot=300ms")
    await begin(client)
    await send_from(client, 0)
    await commit_and_wait(client, sim)
    block = await read_block(client)
    assert block["active"] == 0x0001_0000
    assert block["status"] == Status.BOOT_FAILED
    assert block["staged"] == V2


async def test_rollback(sim: ModbusSimulator, client: AsyncModbusTcpClient) -> None:
    """ROLLBACK after an upgrade swaps back to the previous version, STATUS 8."""
    sim.faults.firmware(unit=UNIT, reboot=REBOOT)
    rr = await client.write_register(B + 13, 4, device_id=UNIT)  # nothing to roll back to
    assert isinstance(rr, ExceptionResponse)
    assert rr.exception_code == 3
    await begin(client)
    await send_from(client, 0)
    await commit_and_wait(client, sim)
    assert (await read_block(client))["active"] == V2
    assert not (await client.write_register(B + 13, 4, device_id=UNIT)).isError()
    await wait_awake(client)
    block = await read_block(client)
    assert block["active"] == 0x0001_0000
    assert block["status"] == Status.ROLLED_BACK


async def test_wrong_offset(client: AsyncModbusTcpClient) -> None:
    """A chunk past NEXT_OFFSET answers exception 3 and leaves NEXT_OFFSET where it was."""
    await begin(client)
    await send_from(client, 0, IMAGE[:CHUNK])
    rr = await send(client, 2 * CHUNK, IMAGE[2 * CHUNK : 3 * CHUNK])
    assert isinstance(rr, ExceptionResponse)
    assert rr.exception_code == 3
    block = await read_block(client)
    assert block["status"] == Status.CHUNK_CRC_ERROR
    assert block["next"] == CHUNK


async def test_repeated_chunk_is_not_applied_twice(
    sim: ModbusSimulator, client: AsyncModbusTcpClient
) -> None:
    """A chunk below NEXT_OFFSET (a resend after a lost answer) is acknowledged, not applied."""
    await begin(client)
    await send_from(client, 0, IMAGE[: 3 * CHUNK])
    rr = await send(client, CHUNK, IMAGE[CHUNK : 2 * CHUNK])
    assert not isinstance(rr, ExceptionResponse), rr
    block = await read_block(client)
    assert block["next"] == 3 * CHUNK
    assert block["status"] == Status.RECEIVING
    assert sim.firmware(UNIT).chunks_applied == 3
    await send_from(client, 3 * CHUNK)
    assert zlib.crc32(sim.firmware(UNIT).image) == zlib.crc32(IMAGE)


async def test_commit_of_a_wrong_image(client: AsyncModbusTcpClient) -> None:
    """COMMIT with a CRC32 that does not match the bytes: exception 3, STATUS 6, no reboot."""
    await begin(client, image=IMAGE[:CHUNK])
    params = [*u32(CHUNK), *u32(zlib.crc32(IMAGE[:CHUNK]) ^ 1), *u32(V2)]
    await client.write_registers(B + 7, params, device_id=UNIT)
    await client.write_register(B + 13, 1, device_id=UNIT)  # a new transfer (crc differs)
    await send_from(client, 0, IMAGE[:CHUNK])
    rr = await client.write_register(B + 13, 2, device_id=UNIT)
    assert isinstance(rr, ExceptionResponse)
    assert rr.exception_code == 3
    block = await read_block(client)
    assert block["status"] == Status.IMAGE_ERROR
    assert block["active"] == 0x0001_0000


async def test_abort(client: AsyncModbusTcpClient) -> None:
    """ABORT drops the partial transfer: STATUS 0, NEXT_OFFSET 0, chunks refused."""
    await begin(client)
    await send_from(client, 0, IMAGE[: 2 * CHUNK])
    assert not (await client.write_register(B + 13, 3, device_id=UNIT)).isError()
    assert (await read_block(client))["status"] == Status.IDLE
    assert (await read_block(client))["next"] == 0
    rr = await send(client, 0, IMAGE[:CHUNK])
    assert isinstance(rr, ExceptionResponse)


async def test_other_units_keep_answering(
    sim: ModbusSimulator, client: AsyncModbusTcpClient
) -> None:
    """Ordinary polls of the other units on the port work during a transfer and its reboot."""
    sim.faults.firmware(unit=UNIT, reboot=REBOOT)
    sim.set_registers(2, 0, [11, 12])
    sim.set_registers(3, 0, [21, 22])
    poller = AsyncModbusTcpClient(HOST, port=sim.port, timeout=2.0, retries=0)
    assert await poller.connect()
    polls = 0
    done = asyncio.Event()

    async def poll() -> None:
        nonlocal polls
        while not done.is_set():
            for unit, values in ((2, [11, 12]), (3, [21, 22])):
                rr = await poller.read_holding_registers(0, count=2, device_id=unit)
                assert rr.registers == values
                polls += 1

    task = asyncio.create_task(poll())
    try:
        await begin(client)
        await send_from(client, 0)
        at_commit = polls
        assert not (await client.write_register(B + 13, 2, device_id=UNIT)).isError()
        await asyncio.sleep(REBOOT / 2)
        assert sim.rebooting(UNIT)
        assert polls > at_commit  # polled while unit 1 was silent
        done.set()
        await task
    finally:
        done.set()
        task.cancel()
        poller.close()
    assert polls > 20


async def test_block_answers_whatever_the_register_count(client: AsyncModbusTcpClient) -> None:
    """With 20 ordinary registers, 20 is out of range but the block at 60000 answers."""
    rr = await client.read_holding_registers(20, count=1, device_id=UNIT)
    assert isinstance(rr, ExceptionResponse)
    assert rr.exception_code == 2
    assert (await read_block(client))["active"] == 0x0001_0000
    rr = await client.write_register(B, 5, device_id=UNIT)  # ACTIVE_VERSION is read-only
    assert isinstance(rr, ExceptionResponse)
    assert rr.exception_code == 2


async def test_cli_firmware_options() -> None:
    """``--firmware-base``, ``--firmware-version`` and the firmware ``--faults`` reach the units."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twinplane.cli",
        "sim",
        "modbus",
        "--devices",
        "2",
        "--port",
        "0",
        "--firmware-base",
        "50000",
        "--firmware-version",
        "0x20003",
        "--faults",
        "unit=1:badchunk=2:reboot=200ms:bootfail",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        header = await asyncio.wait_for(proc.stdout.readline(), 5.0)
        assert b"unit=1:badchunk=2:reboot=200ms:bootfail" in header
        where = await asyncio.wait_for(proc.stdout.readline(), 5.0)
        match = re.search(rb":(\d+)\s+unit ids 1-2", where)
        assert match is not None, where
        c = AsyncModbusTcpClient(HOST, port=int(match.group(1)), timeout=2.0, retries=0)
        assert await c.connect()
        try:
            rr = await c.read_holding_registers(50000, count=5, device_id=2)
            assert rr.registers == [2, 3, 0, 0, 0]
        finally:
            c.close()
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 5.0)
        assert proc.returncode == 0, err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_crc16_matches_pymodbus() -> None:
    """Our CRC-16 is the Modbus RTU one: its check value, and as pymodbus computes it."""
    assert crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS's catalogued check value
    assert crc16(b"\x01\x03\x00\x00\x00\x01") == 0x0A84  # sent on RTU as 84 0A
    for data in (b"", IMAGE[:232], IMAGE):
        assert crc16(data) == pymodbus_crc16(data)


def test_firmware_faults_text() -> None:
    """The firmware fault fields parse and describe themselves in the --faults syntax."""
    faults = SimFaults("unit=2:powerloss=2048:badchunk=3:reboot=5s:bootfail")
    fault = faults.get(5020, 2)
    assert fault is not None
    assert (fault.power_loss_at, fault.bad_chunk, fault.reboot, fault.boot_fail) == (
        2048,
        3,
        5.0,
        True,
    )
    assert faults.describe() == "unit=2:powerloss=2048:badchunk=3:reboot=5000ms:bootfail"
    with pytest.raises(Exception, match="powerloss"):
        SimFaults("unit=2:powerloss=x")
