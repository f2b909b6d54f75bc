"""The simulated `tracardi/tracardi-gui`: one small HTML page on its port (the real one is nginx + React)."""

from __future__ import annotations

import html
import os

from aiohttp import web

from devenv.simulator.versions import Version

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Tracardi {version} (simulated)</title></head>
<body><h1>Tracardi GUI {version}</h1>
<p>Simulated by tracardi-operator's devenv. API: <code>{api}</code></p></body></html>
"""


def make_gui(version: Version, tag: str, api_url: str | None = None) -> web.Application:
    api = os.environ.get("API_URL", "") if api_url is None else api_url
    page = PAGE.format(version=html.escape(tag), api=html.escape(api or "(API_URL not set)"))

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", index)
    return app
