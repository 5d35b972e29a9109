"""``twinplane cloud``: the hub, the device controller and the REST API, composed.

One port (default ``127.0.0.1:10000``) serves the hub (``/hub/v1/connect``), the registry's REST
API at Kubernetes' own paths (embedded registry) and twinplane's own routes, ``/healthz`` and
``/metrics``; TLS when given a certificate and key. Startup: the cloud's file → the registry →
the controller (informers synced) → the listening socket. Shutdown runs the other way; the
controller writes what is dirty before it stops.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from twinplane.cloud.controller import DeviceController
from twinplane.cloud.hub import Hub
from twinplane.cloud.registry import Registry
from twinplane.cloud.state import KEEP_EVENTS_S, CloudState
from twinplane.cloud.tokens import TokenBook
from twinplane.cloud.uploads import UploadRoutes
from twinplane.rest.guard import RequestGuard
from twinplane.service import serve

__all__ = ["CloudApp", "CloudConfig", "run_cloud"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CloudConfig:
    """Settings of one cloud.

    Attributes:
        home: State directory: ``home/registry.db`` (embedded registry), ``home/cloud.db``,
            ``home/tokens.json``.
        listen: ``HOST:PORT`` (port 0 picks a free one).
        kubeconfig: Use the Kubernetes API server of this kubeconfig instead of the embedded
            registry; ``in_cluster`` uses the pod's service account.
        tls_cert: Certificate (PEM) for TLS, with ``tls_key``.
        status_interval: Seconds between DeviceStatus writes of one device, at most.
        online_refresh: Seconds between rewrites of an unchanged ``lastOnlineTime``.
        allowed_hosts: Names the REST API answers to besides its address and loopback.
        event_log_max: The edges' device events kept, at most (the newest).
        event_log_max_age_s: Seconds an event is kept after it last happened.
    """

    home: Path
    listen: str = "127.0.0.1:10000"
    kubeconfig: Path | None = None
    in_cluster: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    status_interval: float = 1.0
    online_refresh: float = 60.0
    allowed_hosts: tuple[str, ...] = ()
    event_log_max: int = 50_000
    event_log_max_age_s: float = KEEP_EVENTS_S
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def registry_kind(self) -> str:
        """``kubernetes`` or ``embedded``."""
        return "kubernetes" if self.kubeconfig is not None or self.in_cluster else "embedded"


def make_registry(config: CloudConfig) -> Registry:
    """The registry the config asks for."""
    if config.registry_kind == "kubernetes":
        from twinplane.cloud.registry.kube import KubeRegistry  # noqa: PLC0415 - optional

        return KubeRegistry(config.kubeconfig)
    from twinplane.cloud.registry.embedded import EmbeddedRegistry  # noqa: PLC0415

    return EmbeddedRegistry(config.home / "registry.db")


class CloudApp:
    """A running cloud (see :func:`run_cloud`)."""

    def __init__(self, config: CloudConfig, registry: Registry | None = None) -> None:
        self.config = config
        self.registry = registry
        self.state = CloudState(
            config.home / "cloud.db",
            keep_events=config.event_log_max,
            keep_events_s=config.event_log_max_age_s,
        )
        self.tokens = TokenBook(config.home)
        self.controller: DeviceController | None = None
        self.hub: Hub | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._guard: RequestGuard | None = None
        self._uploads: UploadRoutes | None = None

    async def start(self) -> None:
        """Starts every part; raises if one cannot start (the caller stops what started)."""
        cfg = self.config
        self.state.open()
        if self.registry is None:
            self.registry = make_registry(cfg)
        await self.registry.start()
        self.controller = DeviceController(
            self.registry,
            self.state,
            status_interval=cfg.status_interval,
            online_refresh=cfg.online_refresh,
        )
        await self.controller.start()
        self.hub = Hub(self.controller, self.tokens, self.state)
        self._uploads = uploads = UploadRoutes(self.state)
        self.hub.add_upload_listener(uploads.notify)
        app = web.Application(middlewares=[self._guarded], client_max_size=8 * 1024 * 1024)
        self.hub.routes(app.router)
        uploads.routes(app.router)
        app.router.add_get("/healthz", self._healthz)
        from twinplane.cloud.api import add_routes  # noqa: PLC0415 - the REST API

        add_routes(app, self.registry, controller=self.controller)
        host, _, port = cfg.listen.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        context = self._tls()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, int(port), ssl_context=context)
        await site.start()
        bound = self._runner.addresses[0][1]
        self._guard = RequestGuard(host, bound, cfg.allowed_hosts)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if context else 'http'}://{shown}:{bound}"

    def _tls(self) -> ssl.SSLContext | None:
        cfg = self.config
        if cfg.tls_cert is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        return context

    @web.middleware
    async def _guarded(self, request: web.Request, handler: Any) -> web.StreamResponse:  # noqa: ANN401
        if self._guard is not None and request.path != "/hub/v1/connect":
            from twinplane.rest.guard import RequestRefused  # noqa: PLC0415

            try:
                self._guard.check(request, write_route=request.method not in ("GET", "HEAD"))
            except RequestRefused as refused:
                return web.json_response(
                    {"kind": "Status", "status": "Failure", "message": str(refused), "code": 403},
                    status=403,
                )
        response: web.StreamResponse = await handler(request)
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        assert self.hub is not None  # noqa: S101
        assert self.registry is not None  # noqa: S101
        return web.json_response(
            {
                "status": "ok",
                "registry": self.registry.name,
                "nodes": self.hub.nodes(),
            }
        )

    async def stop(self) -> None:
        """Stops every part that started, in reverse order."""
        if self.hub is not None:
            await self.hub.close()
        if self._uploads is not None:
            self._uploads.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.controller is not None:
            await self.controller.stop()
        if self.registry is not None:
            await self.registry.close()
        self.state.close()


async def run_cloud(config: CloudConfig, *, ready: asyncio.Event | None = None) -> None:
    """Runs a cloud until SIGINT/SIGTERM (or cancellation), then stops cleanly."""
    app = CloudApp(config)

    def banner() -> str:
        return (
            f"twinplane cloud: {app.url}  registry {config.registry_kind}  "
            f"hub {app.url.replace('http', 'ws', 1)}/hub/v1/connect  state {config.home}"
        )

    await serve(app, banner=banner, ready=ready)
