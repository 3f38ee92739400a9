"""The studio's routes (Starlette): HTML pages at stable URLs, the JSON the graph polls, the
endpoint Test call, monitor plots and static assets. Every name in a URL is checked against
Azure's naming rules before any lookup; an unknown or invalid one is a 404 page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from amlocal.studio import html
from amlocal.studio.readonly import Mlflow, Records, valid_name
from amlocal.studio.views import endpoints, graph, jobs, models, schedules, step

STATIC = Path(__file__).parent / "static"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


class Studio:
    """The workspace a studio shows, and its handlers."""

    def __init__(self, home: Path, tracking_uri: str) -> None:
        self.home = home
        self.records = Records(home)
        self.mlflow = Mlflow(tracking_uri)
        self.tracking_uri = tracking_uri

    def _job(self, request: Request) -> dict[str, Any]:
        name = request.path_params["name"]
        job = self.records.get("job", name) if valid_name(name) else None
        if job is None:
            raise HTTPException(404, f"job '{name}'")
        return job

    def _named(
        self, request: Request, kind: str, what: str, rule: str = "resource"
    ) -> dict[str, Any]:
        name = request.path_params["name"]
        rec = self.records.get(kind, name) if valid_name(name, rule) else None
        if rec is None:
            raise HTTPException(404, f"{what} '{name}'")
        return rec

    async def home_page(self, request: Request) -> Response:
        return RedirectResponse("/jobs")

    async def jobs(self, request: Request) -> Response:
        return HTMLResponse(jobs.list_page(self.records, dict(request.query_params)))

    async def job(self, request: Request) -> Response:
        return HTMLResponse(jobs.job_page(self._job(request)))

    async def job_graph(self, request: Request) -> Response:
        return JSONResponse(graph.graph(self.records, self._job(request)))

    async def job_detail(self, request: Request) -> Response:
        from amlocal import ui

        job = self._job(request)
        run_id = (job.get("properties") or {}).get("mlflow.runId")
        link = ui.run_url_in(self.mlflow.path, run_id) if run_id else None
        return JSONResponse(step.detail(self.home, self.mlflow, job, link))

    async def endpoints(self, request: Request) -> Response:
        return HTMLResponse(endpoints.list_page(self.records))

    async def endpoint(self, request: Request) -> Response:
        ep = self._named(request, endpoints.EP, "online endpoint", "endpoint")
        return HTMLResponse(endpoints.endpoint_page(self.records, ep))

    async def endpoint_test(self, request: Request) -> Response:
        """The Test tab's call: JSON only, with the studio's own header, so that no other
        web page the browser shows can make the studio score (a cross-site form cannot)."""
        ep = self._named(request, endpoints.EP, "online endpoint", "endpoint")
        if request.headers.get("x-amlocal-studio") != "1" or not request.headers.get(
            "content-type", ""
        ).startswith("application/json"):
            return JSONResponse({"error": "send JSON from the studio's Test tab"}, 400)
        raw = await request.body()
        if len(raw) > endpoints.MAX_BODY:
            return JSONResponse({"error": "body over 1 MiB"}, 413)
        try:
            sent = json.loads(raw)
            body, deployment = json.dumps(sent["body"]).encode(), str(sent.get("deployment") or "")
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'expected {"body": <JSON>, "deployment": "<name>"}'}, 400)
        if deployment and not valid_name(deployment, "endpoint"):
            return JSONResponse({"error": f"invalid deployment name {deployment!r}"}, 400)
        code, answer = await run_in_threadpool(endpoints.score, self.home, ep, body, deployment)
        return JSONResponse({"status": code, "answer": answer})

    async def models(self, request: Request) -> Response:
        return HTMLResponse(models.list_page(self.mlflow))

    async def model(self, request: Request) -> Response:
        name = request.path_params["name"]
        text = models.model_page(self.records, self.mlflow, name) if valid_name(name) else None
        if text is None:
            raise HTTPException(404, f"model '{name}'")
        return HTMLResponse(text)

    async def schedules(self, request: Request) -> Response:
        return HTMLResponse(schedules.list_page(self.records, monitors=False))

    async def schedule(self, request: Request) -> Response:
        rec = self._named(request, schedules.KIND, "schedule")
        return HTMLResponse(schedules.schedule_page(self.records, rec))

    async def monitors(self, request: Request) -> Response:
        return HTMLResponse(schedules.list_page(self.records, monitors=True))

    async def monitor(self, request: Request) -> Response:
        rec = self._named(request, schedules.KIND, "monitor")
        if not schedules.is_monitor(rec):
            raise HTTPException(404, f"monitor '{rec['name']}'")
        return HTMLResponse(schedules.monitor_page(self.home, self.records, rec))

    async def monitor_plot(self, request: Request) -> Response:
        rec = self._named(request, schedules.KIND, "monitor")
        job_name, plot = request.path_params["job"], request.path_params["plot"]
        job = self.records.get("job", job_name) if valid_name(job_name) else None
        if job is None or (job.get("properties") or {}).get(schedules.PROP_NAME) != rec["name"]:
            raise HTTPException(404, f"monitor run '{job_name}'")
        folder = schedules.signals_dir(self.home, job)
        if folder is None or not valid_name(plot) or not plot.endswith(".png"):
            raise HTTPException(404, f"plot '{plot}'")
        path = (folder / plot).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            raise HTTPException(404, f"plot '{plot}'")
        return FileResponse(path, media_type="image/png")


async def _not_found(request: Request, exc: Exception) -> Response:
    detail = getattr(exc, "detail", "") or request.url.path
    code = getattr(exc, "status_code", 404)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": f"{detail} was not found"}, code)
    return HTMLResponse(html.not_found(str(detail)), code)


class LoopbackOnly:
    """Refuse requests whose Host is not a loopback name: a page on another site cannot
    reach the studio through a DNS name it rebinds to 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if host.rsplit(":", 1)[0] not in LOOPBACK_HOSTS:
                await HTMLResponse("studio answers on 127.0.0.1 only", 421)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(home: Path, tracking_uri: str) -> Any:
    s = Studio(home, tracking_uri)
    routes = [
        Route("/", s.home_page),
        Route("/api/jobs/{name}/graph", s.job_graph),
        Route("/api/jobs/{name}/detail", s.job_detail),
        Route("/api/endpoints/{name}/test", s.endpoint_test, methods=["POST"]),
        Route("/monitors/{name}/plots/{job}/{plot}", s.monitor_plot),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    # Every collection has a list page and a stable page per name: /<kind>, /<kind>/<name>.
    pages = (
        ("jobs", s.jobs, s.job),
        ("endpoints", s.endpoints, s.endpoint),
        ("models", s.models, s.model),
        ("schedules", s.schedules, s.schedule),
        ("monitors", s.monitors, s.monitor),
    )
    for kind, listing, item in pages:
        routes += [Route(f"/{kind}", listing), Route(f"/{kind}/{{name}}", item)]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, HTTPException: _not_found})
    return LoopbackOnly(app)
