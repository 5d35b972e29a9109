"""``twinplane get alarms``, ``twinplane ack`` and describe's Alarms against ``twinplane edge``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from test_cli import cli, failed, ok, report, thermo

from edge_helpers import EdgeProcess, edge_process

RULE = {"name": "too-hot", "property": "temperature", "condition": "above", "threshold": 30,
        "severity": "critical", "message": "too hot"}  # fmt: skip


def hot_thermo(ns: str) -> str:
    """``thermo`` with the model carrying the rule too-hot (temperature above 30)."""
    annotation = json.dumps(json.dumps([RULE]))
    head = f"metadata: {{name: thermo-model, namespace: {ns}}}"
    text = thermo(ns)
    assert head in text
    return text.replace(
        head,
        f"metadata: {{name: thermo-model, namespace: {ns},"
        f" annotations: {{twinplane.io/alarms: {annotation}}}}}",
    )


@pytest.fixture(scope="module")
def server() -> Iterator[EdgeProcess]:
    """``twinplane edge`` in a subprocess; it must stop with status 0 on SIGTERM."""
    with edge_process("--log-level", "warning") as process:
        process.start()
        yield process
        assert process.terminate() == 0, process.output()


def wait_for_alarms(server: EdgeProcess, *args: str, count: int) -> list[dict[str, object]]:
    """``get alarms ARGS -o json`` until it lists ``count`` alarms."""
    deadline = time.monotonic() + 20
    while True:
        items = json.loads(ok(server, "get", "alarms", *args, "-o", "json"))["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return list(items)
        time.sleep(0.1)


def test_get_ack_and_describe_show_an_alarms_lifecycle(server: EdgeProcess) -> None:
    """A raised alarm is listed, acked by name (twice is harmless), in describe, then cleared."""
    ok(server, "apply", "-f", "-", stdin=hot_thermo("alc"))
    empty = cli(server, "get", "alarms", "-n", "alc")
    assert (empty.returncode, empty.stderr.strip()) == (0, "No alarms found in namespace alc.")
    report(server, "alc", "thermo-1", temperature="31")
    (alarm,) = wait_for_alarms(server, "-n", "alc", count=1)
    assert (alarm["rule"], alarm["state"], alarm["severity"]) == ("too-hot", "active", "critical")
    lines = ok(server, "get", "alarms", "-n", "alc").splitlines()
    assert lines[0].split()[:5] == ["DEVICE", "RULE", "PROPERTY", "SEVERITY", "STATE"]
    assert lines[1].split()[:5] == ["thermo-1", "too-hot", "temperature", "critical", "active"]

    out = ok(server, "ack", "thermo-1", "too-hot", "-n", "alc", "--by", "alice")
    assert out.strip() == "alarm too-hot of device alc/thermo-1 acknowledged by alice"
    out = ok(server, "ack", "thermo-1", "too-hot", "-n", "alc", "--by", "bob")
    assert "acknowledged by alice" in out
    assert wait_events(server, "alc", "AlarmAcknowledged")
    text = ok(server, "describe", "device", "thermo-1", "-n", "alc")
    alarms = text[text.index("Alarms:") : text.index("Events:")]
    assert "too-hot" in alarms
    assert "acknowledged" in alarms
    assert "alice" in alarms
    assert "AlarmRaised" in text[text.index("Events:") :]

    report(server, "alc", "thermo-1", temperature="20")
    (cleared,) = wait_for_alarms(server, "thermo-1", "-n", "alc", count=1)
    deadline = time.monotonic() + 20
    while cleared["state"] != "cleared" and time.monotonic() < deadline:
        time.sleep(0.1)
        (cleared,) = wait_for_alarms(server, "thermo-1", "-n", "alc", count=1)
    assert cleared["state"] == "cleared"
    assert json.loads(ok(server, "get", "alarms", "-n", "alc", "-o", "json"))["items"] == []


def wait_events(server: EdgeProcess, ns: str, reason: str) -> bool:
    """Whether the event log of ``ns`` comes to list ``reason`` (the log writes in batches)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = json.loads(ok(server, "get", "events", "-n", ns, "--type", "alarm", "-o", "json"))
        if any(i["reason"] == reason for i in items["items"]):
            return True
        time.sleep(0.1)
    return False


def test_ack_errors_name_the_alarm_and_exit_1(server: EdgeProcess) -> None:
    """Acking an alarm not active, or of an unknown device, fails with the server's words."""
    ok(server, "apply", "-f", "-", stdin=hot_thermo("ale"))
    lines = failed(server, "ack", "thermo-1", "too-hot", "-n", "ale")
    assert 'alarm "too-hot" is not active on device ale/thermo-1' in lines[0]
    lines = failed(server, "ack", "nope", "too-hot", "-n", "ale")
    assert '"nope" not found' in lines[0]
    lines = failed(server, "delete", "alarms", "x")
    assert "acknowledge one with twinplane ack" in lines[0]
