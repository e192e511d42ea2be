"""Dispatch and supplies in-process behind the portal fixture (tests/portal_harness.py):
each on its own SQLite database, reached by the portal's transport by host name. (Command
shares a table name with dispatch in SQLModel's one metadata, so this group, tests/portal_ops,
runs in its own process, without command.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from dispatch.main import create_app as dispatch_app
from dispatch.settings import DispatchSettings
from supplies.main import create_app as supplies_app
from supplies.settings import SuppliesSettings

QUIET = dict(jobs_interval_s=0, kafka_enabled=False)


@asynccontextmanager
async def behind(portal, tmp_path, clock) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """The two services started and routed; a client to each (as an operator calls it)."""
    apps = {
        "dispatch": dispatch_app(
            DispatchSettings(
                database_url=f"sqlite+aiosqlite:///{tmp_path}/dispatch.db", start_consumers=False,
                plan_time_limit_s=1.0, **QUIET,
            ),
            clock=clock,
        ),
        "supplies": supplies_app(
            SuppliesSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/supplies.db", start_consumers=False, **QUIET), clock=clock
        ),
    }  # fmt: skip
    async with AsyncExitStack() as stack:
        clients = {}
        for name, app in apps.items():
            await stack.enter_async_context(app.router.lifespan_context(app))
            portal.transport.transports[name] = httpx.ASGITransport(app=app)
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
            )
        clients["apps"] = apps
        yield clients
