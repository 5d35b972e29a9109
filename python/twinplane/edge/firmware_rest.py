"""The firmware routes of the device manager's REST API (:mod:`twinplane.edge.firmware`).

- ``PUT /api/v1/firmware/{name}/{version}?model=M[&model=M2][&sha256=HEX][&description=T]``:
  the body is the image's bytes (``Content-Type: application/octet-stream``), streamed to disk.
  ``201`` with the artifact when it is new, ``200`` when the same bytes were stored already,
  ``409`` when that name and version hold other bytes, ``413`` past the size limit, ``422`` when
  the bytes do not have the given ``sha256``; nothing is stored on an error.
- ``GET /api/v1/firmware``: a ``FirmwareList``; ``GET /api/v1/firmware/{name}/{version}``: one
  artifact; ``GET …/content``: its bytes (``ETag`` its sha256);
- ``DELETE /api/v1/firmware/{name}/{version}``.

An artifact is ``{"name", "version", "models", "size", "sha256", "description", "created"}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from aiohttp import web

from twinplane.edge.firmware import (
    FirmwareConflictError,
    FirmwareStore,
    FirmwareTooLargeError,
    UnknownFirmwareError,
    check_firmware_name,
)
from twinplane.edge.resources import ApiError
from twinplane.edge.store.firmware import StoredFirmware
from twinplane.errors import SpecError

__all__ = ["FirmwareRoutes", "firmware_json"]

_ENCODER: Final = msgspec.json.Encoder()
_CHUNK: Final = 64 * 1024
_SEND: Final = 256 * 1024
_BASE: Final = "/api/v1/firmware"


def firmware_json(fw: StoredFirmware) -> dict[str, Any]:
    """An artifact as the API shows it."""
    created = datetime.fromtimestamp(fw.created_ms / 1000, UTC)
    return {
        "name": fw.name,
        "version": fw.version,
        "models": list(fw.models),
        "size": fw.size,
        "sha256": fw.sha256,
        "description": fw.description,
        "created": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(body), status=status, content_type="application/json")


def _ids(request: web.Request) -> tuple[str, str]:
    try:
        name = check_firmware_name(request.match_info["name"], "name")
        version = check_firmware_name(request.match_info["version"], "version")
    except SpecError as err:
        raise _invalid(err) from None
    return name, version


def _invalid(err: SpecError, status: int = 400) -> ApiError:
    field = err.path or ""
    return ApiError(
        status, err.message, details={"causes": [{"field": field, "message": err.message}]}
    )


class FirmwareRoutes:
    """The routes over a :class:`FirmwareStore`."""

    def __init__(self, firmware: FirmwareStore) -> None:
        self.firmware = firmware

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Adds the routes to ``router``."""
        router.add_get(_BASE, self.list)
        router.add_put(f"{_BASE}/{{name}}/{{version}}", self.put)
        router.add_get(f"{_BASE}/{{name}}/{{version}}", self.get)
        router.add_delete(f"{_BASE}/{{name}}/{{version}}", self.delete)
        router.add_get(f"{_BASE}/{{name}}/{{version}}/content", self.content)

    async def list(self, _request: web.Request) -> web.Response:
        """``GET /api/v1/firmware``."""
        items = [firmware_json(fw) for fw in await self.firmware.list()]
        return _json({"kind": "FirmwareList", "apiVersion": "v1", "metadata": {}, "items": items})

    async def put(self, request: web.Request) -> web.Response:
        """``PUT /api/v1/firmware/{name}/{version}``: streams the body into the store."""
        name, version = _ids(request)
        models = tuple(m.strip() for m in request.query.getall("model", []) if m.strip())

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in request.content.iter_chunked(_CHUNK):
                yield chunk

        try:
            fw, outcome = await self.firmware.add(
                name,
                version,
                chunks(),
                models=models,
                description=request.query.get("description", ""),
                sha256=request.query.get("sha256") or None,
            )
        except SpecError as err:
            raise _invalid(
                err, 422 if err.path == "sha256" and "received" in err.message else 400
            ) from None
        except FirmwareTooLargeError as err:
            raise ApiError(413, err.message) from None
        except FirmwareConflictError as err:
            raise ApiError(409, err.message, reason="AlreadyExists") from None
        return _json(firmware_json(fw), 201 if outcome == "created" else 200)

    async def get(self, request: web.Request) -> web.Response:
        """``GET /api/v1/firmware/{name}/{version}``."""
        name, version = _ids(request)
        try:
            return _json(firmware_json(await self.firmware.get(name, version)))
        except UnknownFirmwareError as err:
            raise ApiError(404, err.message) from None

    async def content(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/firmware/{name}/{version}/content``: the bytes."""
        name, version = _ids(request)
        try:
            fw = await self.firmware.get(name, version)
        except UnknownFirmwareError as err:
            raise ApiError(404, err.message) from None
        path = self.firmware.path(fw)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise ApiError(
                500, f"firmware {name} {version}: its file {path.name} is missing"
            ) from None
        response = web.StreamResponse(
            headers={"ETag": f'"{fw.sha256}"', "Content-Type": "application/octet-stream"}
        )
        response.content_length = fw.size
        try:
            await response.prepare(request)
            while chunk := await asyncio.to_thread(file.read, _SEND):
                await response.write(chunk)
        finally:
            await asyncio.to_thread(file.close)
        await response.write_eof()
        return response

    async def delete(self, request: web.Request) -> web.Response:
        """``DELETE /api/v1/firmware/{name}/{version}``."""
        name, version = _ids(request)
        try:
            await self.firmware.delete(name, version)
        except UnknownFirmwareError as err:
            raise ApiError(404, err.message) from None
        return _json({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200})
