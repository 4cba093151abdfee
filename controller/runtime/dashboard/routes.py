"""The dashboard's HTTP routes on the controller's `--listen` address (Starlette).

GET / (overview), GET /rollouts/{model}, their JSON under /api/dashboard/, the
shipped static files, and GET/POST /login. Every route but /login and the static
files needs the token when `--dashboard-token-file` is set: a refused HTML request
gets the sign-in page with 401, a refused JSON request 401 JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from controller.runtime.dashboard import auth, pages, view
from controller.runtime.dashboard.assets import STATIC_PREFIX, static_file

MAX_LOGIN_BODY = 4096


class DashboardSource(Protocol):
    """What the dashboard reads of the running controller (`runner.Controller`, or a fake)."""

    def status(self) -> Mapping[str, Any]: ...

    def rollout_history(self, model: str) -> view.RolloutHistory | None: ...


@dataclass(frozen=True)
class DashboardSettings:
    token: str = ""
    commit_url: str = ""
    available_commands: tuple[str, ...] = ()


Handler = Callable[[Request], Awaitable[Response]]


def dashboard_routes(source: DashboardSource, settings: DashboardSettings) -> list[Route]:
    def guarded(handler: Handler, *, json: bool) -> Handler:
        async def run(request: Request) -> Response:
            if auth.allowed(settings.token, request.headers.get("authorization"),
                            request.headers.get("cookie")):
                return await handler(request)
            if json:
                return JSONResponse({"error": "dashboard token required"}, status_code=401,
                                    headers={"www-authenticate": "Bearer"})
            return HTMLResponse(pages.login_page(), status_code=401,
                                headers={"www-authenticate": "Bearer"})
        return run

    def rollout_data(model: str) -> dict[str, Any] | None:
        return view.rollout_view(
            source.status(), model, source.rollout_history(model),
            commit_url=settings.commit_url, available_commands=settings.available_commands)

    async def overview_html(_: Request) -> Response:
        doc = source.status()
        return HTMLResponse(pages.overview_page(view.overview(doc), doc))

    async def overview_json(_: Request) -> Response:
        return JSONResponse({"rows": view.overview(source.status())})

    async def rollout_html(request: Request) -> Response:
        data = rollout_data(request.path_params["model"])
        if data is None:
            return HTMLResponse("<h1>No such rollout</h1>", status_code=404)
        return HTMLResponse(pages.rollout_page(data))

    async def rollout_json(request: Request) -> Response:
        data = rollout_data(request.path_params["model"])
        if data is None:
            return JSONResponse({"error": "no such rollout"}, status_code=404)
        return JSONResponse(data)

    async def static(request: Request) -> Response:
        found = static_file(request.path_params["name"])
        if found is None:
            return Response("not found", status_code=404)
        body, media = found
        return Response(body, media_type=media,
                        headers={"cache-control": "public, max-age=3600"})

    async def login_form(_: Request) -> Response:
        return HTMLResponse(pages.login_page())

    async def login(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_LOGIN_BODY:
                return HTMLResponse(pages.login_page(failed=True), status_code=413)
        given = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        if not auth.token_matches(settings.token, given):
            return HTMLResponse(pages.login_page(failed=True), status_code=401)
        response = RedirectResponse("./", status_code=303)
        response.set_cookie(auth.COOKIE, auth.session_value(settings.token),
                            httponly=True, samesite="strict")
        return response

    return [
        Route("/", guarded(overview_html, json=False), methods=["GET"]),
        Route("/rollouts/{model}", guarded(rollout_html, json=False), methods=["GET"]),
        Route("/api/dashboard/overview", guarded(overview_json, json=True), methods=["GET"]),
        Route("/api/dashboard/rollouts/{model}", guarded(rollout_json, json=True),
              methods=["GET"]),
        Route(STATIC_PREFIX + "/{name}", static, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
    ]


def command_names(names: Iterable[str]) -> tuple[str, ...]:
    """The acting subcommands among a parser's commands (promote, abort, retry, pause)."""
    acting = ("promote", "abort", "retry", "pause", "resume")
    present = set(names)
    return tuple(name for name in acting if name in present)
