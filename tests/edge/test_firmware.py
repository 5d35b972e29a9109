"""Firmware artifacts on the edge: streamed in over REST, checked, stored once, immutable."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from edge_helpers import running_app, short_home
from twinplane.edge.app import EdgeApp
from twinplane.rest.guard import CLIENT_HEADER

HEADERS = {CLIENT_HEADER: "twinplane-tests", "Content-Type": "application/octet-stream"}
IMAGE = os.urandom(300 * 1024 + 17)  # not a multiple of any chunk size
DIGEST = hashlib.sha256(IMAGE).hexdigest()


def folder(app: EdgeApp) -> Path:
    """Where the edge keeps the files."""
    assert app.firmware is not None
    return app.firmware.folder


async def chunked(data: bytes, size: int = 10_000) -> AsyncIterator[bytes]:
    """``data`` as a chunked upload (no Content-Length): streamed, not read whole."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def put(
    http: aiohttp.ClientSession, url: str, data: object, **query: str
) -> tuple[int, dict[str, Any]]:
    """``PUT`` an image; the status and the JSON answer."""
    params = [("model", m) for m in query.pop("model", "sim-thermostat").split(",")]
    params += list(query.items())
    async with http.put(url, data=data, params=params, headers=HEADERS) as resp:
        return resp.status, await resp.json()


async def test_an_image_is_streamed_in_checked_and_served_back() -> None:
    """A chunked upload with its sha256 is stored once; the same bytes again are unchanged."""
    with short_home() as home:
        async with running_app(home) as app, aiohttp.ClientSession(app.rest_url) as http:
            base = "/api/v1/firmware/thermo-fw/1.2"
            status, body = await put(http, base, chunked(IMAGE), sha256=DIGEST, description="fix")
            assert status == 201, body
            assert body["size"] == len(IMAGE)
            assert body["sha256"] == DIGEST
            assert body["models"] == ["default/sim-thermostat"]
            stored = folder(app) / DIGEST
            assert stored.read_bytes() == IMAGE
            assert stat.S_IMODE(stored.stat().st_mode) == 0o600
            assert sorted(p.name for p in folder(app).iterdir()) == [DIGEST]  # no temp left

            status, again = await put(http, base, IMAGE)  # the same bytes, no digest given
            assert status == 200, again
            assert again == body

            async with http.get(f"{base}/content") as resp:
                assert resp.status == 200
                assert resp.headers["ETag"] == f'"{DIGEST}"'
                assert await resp.read() == IMAGE
            async with http.get("/api/v1/firmware") as resp:
                listed = await resp.json()
            assert [(i["name"], i["version"]) for i in listed["items"]] == [("thermo-fw", "1.2")]

            # A second artifact with the same bytes shares the file; deleting one keeps it.
            status, _ = await put(http, "/api/v1/firmware/thermo-fw/1.2-copy", IMAGE)
            assert status == 201
            async with http.delete(base, headers=HEADERS) as resp:
                assert resp.status == 200
            assert stored.exists()
            async with http.delete("/api/v1/firmware/thermo-fw/1.2-copy", headers=HEADERS) as r:
                assert r.status == 200
            assert not stored.exists()
            async with http.get(base) as resp:
                assert resp.status == 404


async def test_a_bad_upload_stores_nothing() -> None:
    """Wrong digest, other bytes for a stored version, a bad name, no model: nothing changes."""
    with short_home() as home:
        async with running_app(home) as app, aiohttp.ClientSession(app.rest_url) as http:
            base = "/api/v1/firmware/thermo-fw/2.0"
            status, body = await put(http, base, chunked(IMAGE), sha256="0" * 64)
            assert status == 422, body
            assert body["details"]["causes"][0]["field"] == "sha256"
            assert "have sha256 " + DIGEST in str(body["message"])
            assert list(folder(app).iterdir()) == []
            async with http.get("/api/v1/firmware") as resp:
                assert (await resp.json())["items"] == []

            assert (await put(http, base, IMAGE))[0] == 201
            status, body = await put(http, base, IMAGE[:-1])
            assert status == 409, body
            assert "immutable" in str(body["message"])
            assert sorted(p.name for p in folder(app).iterdir()) == [DIGEST]

            status, body = await put(http, "/api/v1/firmware/bad%20name/1", IMAGE)
            assert status == 400, body
            assert body["details"]["causes"][0]["field"] == "name"
            status, body = await put(http, "/api/v1/firmware/fw/1", IMAGE, model="Not A Model")
            assert status == 400, body
            assert body["details"]["causes"][0]["field"] == "models[0]"
            status, body = await put(http, "/api/v1/firmware/fw/1", IMAGE, sha256="xyz")
            assert status == 400, body


async def test_an_image_over_the_limit_is_refused_without_a_trace() -> None:
    """Past max_bytes the upload is cut off with 413 and its partial file removed."""
    with short_home() as home:
        async with running_app(home) as app, aiohttp.ClientSession(app.rest_url) as http:
            assert app.firmware is not None
            app.firmware.max_bytes = 100_000
            status, body = await put(http, "/api/v1/firmware/big/1", chunked(IMAGE))
            assert status == 413, body
            assert list(folder(app).iterdir()) == []


async def test_a_restart_keeps_artifacts_and_sweeps_interrupted_uploads() -> None:
    """Stored artifacts survive a restart; a temp file an upload left behind is removed."""
    with short_home() as home:
        async with running_app(home) as app, aiohttp.ClientSession(app.rest_url) as http:
            assert (await put(http, "/api/v1/firmware/fw/1", IMAGE))[0] == 201
            (folder(app) / ".incoming-crashed").write_bytes(b"half an image")
        async with running_app(home) as app, aiohttp.ClientSession(app.rest_url) as http:
            assert sorted(p.name for p in folder(app).iterdir()) == [DIGEST]
            async with http.get("/api/v1/firmware/fw/1/content") as resp:
                assert await resp.read() == IMAGE
