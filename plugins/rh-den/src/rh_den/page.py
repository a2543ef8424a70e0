"""The management page at the store's ``/``: server-rendered HTML with forms, no JavaScript.

Logging in with a token makes a browser session (a token of kind ``session``, ended with the
token it came from) kept in an HttpOnly, SameSite=Strict cookie. Every form carries a CSRF
value: the session's own secret once logged in, a double-submit cookie on the login form.
Everything the page does goes through the same :class:`~rh_den.den.Den` calls as the API, so
the same access rules hold.
"""

from __future__ import annotations

import hmac
import json
import secrets
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from rh_den import api
from rh_den.accounts import SESSION_SECONDS, User
from rh_den.den import Den
from rh_den.errors import DenError

COOKIE = "rh_den_session"
LOGIN_CSRF = "rh_den_login"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                   autoescape=select_autoescape(["html"]))


def _render(name: str, status: int = 200, **values) -> HTMLResponse:
    html = _env.get_template(name).render(quote=lambda p: quote(p, safe="/"), **values)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _cookie(response: Response, request: Request, name: str, value: str, age: int) -> None:
    response.set_cookie(name, value, max_age=age, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")


class Page:
    """The page's routes over one store."""

    def __init__(self, den: Den):
        self.den = den

    def routes(self) -> list[Route]:
        get, post = ["GET"], ["POST"]
        return [Route("/", self.index, methods=get), Route("/login", self.login, methods=post),
                Route("/logout", self.logout, methods=post),
                Route("/ui", self.home, methods=get),
                Route("/ui/folder/{path:path}", self.folder, methods=get),
                Route("/ui/resource/{path:path}", self.resource, methods=get),
                Route("/ui/share/{path:path}", self.share, methods=post),
                Route("/ui/revoke/{path:path}", self.revoke, methods=post),
                Route("/ui/rollback/{path:path}", self.rollback, methods=post),
                Route("/ui/tokens", self.tokens, methods=get + post),
                Route("/ui/tokens/{token_id}/revoke", self.revoke_token, methods=post),
                Route("/ui/admin", self.admin, methods=get + post)]

    # ------------------------------------------------------------------ sessions

    async def _user(self, request: Request) -> User | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        try:
            return await run_in_threadpool(self.den.accounts.authenticate, token, "session")
        except DenError:
            return None

    async def _form(self, request: Request, user: User) -> dict:
        """The posted form, once its CSRF value matched the session's."""
        form = dict(await request.form())
        sent = str(form.pop("csrf", ""))
        if not (user.csrf and hmac.compare_digest(sent, user.csrf)):
            raise DenError(403, "csrf", "the form is stale or was not sent by this page; "
                                        "reload the page and try again")
        return {k: str(v) for k, v in form.items()}

    async def _guarded(self, request: Request, work) -> Response:
        user = await self._user(request)
        if user is None:
            return RedirectResponse("/", status_code=303)
        try:
            return await work(user)
        except DenError as e:
            return _render("error.html", e.status, user=user, error=e)

    async def index(self, request: Request) -> Response:
        if await self._user(request) is not None:
            return RedirectResponse("/ui", status_code=303)
        csrf = secrets.token_urlsafe(24)
        response = _render("login.html", csrf=csrf, error=request.query_params.get("error"))
        _cookie(response, request, LOGIN_CSRF, csrf, 3600)
        return response

    async def login(self, request: Request) -> Response:
        form = await request.form()
        sent, kept = str(form.get("csrf", "")), request.cookies.get(LOGIN_CSRF, "")
        if not (kept and hmac.compare_digest(sent, kept)):
            return _render("login.html", 403, csrf="", error="the login form was not sent by this "
                           "page (or cookies are off); reload it and try again")
        try:
            user = await run_in_threadpool(self.den.accounts.authenticate,
                                           str(form.get("token", "")).strip() or None)
            if user is None:
                raise DenError(401, "auth", "paste a token to log in")
            session = await run_in_threadpool(self.den.accounts.create_session, user)
        except DenError as e:
            csrf = secrets.token_urlsafe(24)
            response = _render("login.html", e.status, csrf=csrf, error=e.message)
            _cookie(response, request, LOGIN_CSRF, csrf, 3600)
            return response
        response = RedirectResponse("/ui", status_code=303)
        _cookie(response, request, COOKIE, session, int(SESSION_SECONDS))
        response.delete_cookie(LOGIN_CSRF, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        async def work(user: User):
            await self._form(request, user)
            await run_in_threadpool(self.den.accounts.end_session, user.token_id)
            response = RedirectResponse("/", status_code=303)
            response.delete_cookie(COOKIE, path="/")
            return response
        return await self._guarded(request, work)

    # ------------------------------------------------------------------ browsing

    async def home(self, request: Request) -> Response:
        async def work(user: User):
            shared = await run_in_threadpool(self.den.catalog.shared_with, user)
            return _render("home.html", user=user, shared=shared,
                           folders=[user.name, *user.groups])
        return await self._guarded(request, work)

    async def folder(self, request: Request) -> Response:
        path = request.path_params["path"].strip("/")

        async def work(user: User):
            listing = await run_in_threadpool(self.den.catalog.listing, user, path)
            return _render("folder.html", user=user, folder=path, listing=listing)
        return await self._guarded(request, work)

    async def resource(self, request: Request) -> Response:
        path = request.path_params["path"].strip("/")
        raw = request.query_params.get("version", "")
        note = request.query_params.get("note")

        async def work(user: User):
            version = int(raw) if raw.isdigit() else None
            item = await run_in_threadpool(self.den.catalog.get, user, path, version)
            history = await run_in_threadpool(self.den.catalog.history, user, path)
            shares = await run_in_threadpool(self.den.catalog.shares, user, path)
            return _render("resource.html", user=user, path=path, item=item, history=history,
                           shares=shares, note=note,
                           config=json.dumps(item["config"], indent=2, sort_keys=True))
        return await self._guarded(request, work)

    # ------------------------------------------------------------------ changing

    def _action(self, request: Request, do):
        path = request.path_params["path"].strip("/")

        async def work(user: User):
            form = await self._form(request, user)
            note = await run_in_threadpool(do, user, path, form)
            return RedirectResponse(f"/ui/resource/{quote(path, safe='/')}?note={quote(note)}",
                                    status_code=303)
        return self._guarded(request, work)

    async def share(self, request: Request) -> Response:
        def do(user, path, form):
            who = [p.strip() for p in form.get("principals", "").split(",") if p.strip()]
            visibility = form.get("visibility") or None
            self.den.catalog.share(user, path, who, form.get("access_level", "read"), visibility)
            return f"shared with {', '.join(who)}" if who else f"visibility: {visibility}"
        return await self._action(request, do)

    async def revoke(self, request: Request) -> Response:
        def do(user, path, form):
            self.den.catalog.revoke(user, path, [form.get("principal", "")])
            return f"revoked {form.get('principal')}"
        return await self._action(request, do)

    async def rollback(self, request: Request) -> Response:
        def do(user, path, form):
            version = int(form.get("version", "0") or 0)
            old = self.den.catalog.get(user, path, version)
            saved = self.den.catalog.save(user, path, old["config"], old["latest"])
            return (f"version {version} saved as version {saved['version']}" if saved["changed"]
                    else f"version {version} is the latest already")
        return await self._action(request, do)

    async def tokens(self, request: Request) -> Response:
        async def work(user: User):
            new = None
            if request.method == "POST":
                form = await self._form(request, user)
                new = await run_in_threadpool(api.create_token, self.den, user,
                                              form.get("name") or "default",
                                              form.get("expires") or None)
            listed = await run_in_threadpool(self.den.accounts.list_tokens, user.name)
            return _render("tokens.html", user=user, tokens=listed, new=new)
        return await self._guarded(request, work)

    async def revoke_token(self, request: Request) -> Response:
        async def work(user: User):
            await self._form(request, user)
            await run_in_threadpool(self.den.accounts.revoke_token, user.name,
                                    request.path_params["token_id"])
            return RedirectResponse("/ui/tokens", status_code=303)
        return await self._guarded(request, work)

    async def admin(self, request: Request) -> Response:
        async def work(user: User):
            if not user.admin:
                raise DenError(403, "forbidden", f"only admins manage users and groups; "
                                                 f"{user.name} is not one")
            new = None
            if request.method == "POST":
                form = await self._form(request, user)
                if form.get("what") == "user":
                    new = await run_in_threadpool(api.add_user, self.den, user, form.get("name", ""),
                                                  form.get("email") or None, bool(form.get("admin")))
                else:
                    members = [m.strip() for m in form.get("members", "").split(",") if m.strip()]
                    await run_in_threadpool(api.add_group, self.den, user, form.get("name", ""),
                                            members)
            users = await run_in_threadpool(self.den.accounts.users)
            groups = await run_in_threadpool(self.den.accounts.groups)
            return _render("admin.html", user=user, users=users, groups=groups, new=new)
        return await self._guarded(request, work)
