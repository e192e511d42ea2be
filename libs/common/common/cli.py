"""`firstline`: the operator's command line.

    firstline token --role grid_worker --sub gw-1 --grid-id G1
    firstline topics                    # create every catalog topic (idempotent)
    firstline schemas [--check]         # write or check docs/schemas/
    firstline migrations revision checkin -m "add column"
    firstline migrations upgrade checkin    # a deploy step: bring its database to head, once
    firstline migrations current checkin [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common.auth import Role, issue_token
from common.settings import StackSettings


def _token(args: argparse.Namespace) -> int:
    settings = StackSettings()
    token = issue_token(
        settings.jwt_secret,
        sub=args.sub,
        role=args.role,
        now=datetime.now(UTC),
        ttl=timedelta(hours=args.ttl_hours or settings.jwt_ttl_hours),
        grid_ids=args.grid_id,
        building_ids=args.building_id,
        department=args.department,
    )
    print(f"# {args.role} {args.sub}: Authorization: Bearer <token below>", file=sys.stderr)
    print(token)
    return 0


def _topics(_: argparse.Namespace) -> int:
    from common.topics import ensure_topics

    settings = StackSettings()
    created = asyncio.run(ensure_topics(settings.kafka_bootstrap_servers, settings.kafka_replication_factor))
    print(json.dumps({"created": created}))
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from common import schemas

    root = Path(args.dir)
    if not args.check:
        for path in schemas.write_all(root):
            print(path)
        return 0
    from common.events import all_events

    stale = []
    for cls in all_events():
        path = schemas.schema_path(root, cls)
        if not path.exists() or json.loads(path.read_text()) != schemas.schema_of(cls):
            stale.append(str(path))
    if stale:
        print("schemas out of date (run `firstline schemas`):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    print("schemas up to date")
    return 0


def _revision(args: argparse.Namespace) -> int:
    from common.migrations import new_revision

    module = importlib.import_module(f"{args.service}.models")
    location = Path(module.__file__).parent / "migrations"
    asyncio.run(new_revision(location, args.message))
    return 0


def _migrations(args: argparse.Namespace) -> int:
    """`upgrade` or `current` on a service's database, as its settings (environment) name it."""
    from common import migrations
    from common.db import Database
    from common.settings import ServiceSettings

    module = importlib.import_module(f"{args.service}.settings")
    (settings_class,) = [
        c for c in vars(module).values() if isinstance(c, type) and issubclass(c, ServiceSettings) and c is not ServiceSettings
    ]
    location = Path(importlib.import_module(f"{args.service}.models").__file__).parent / "migrations"
    db = Database(settings_class().database_url)

    async def run() -> int:
        try:
            if args.action == "upgrade":
                await migrations.upgrade(db, location)
            revision, head = await migrations.current(db, location)
        finally:
            await db.dispose()
        print(json.dumps({"service": args.service, "revision": revision, "head": head, "at_head": revision == head}))
        return 1 if args.action == "current" and args.check and revision != head else 0

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="firstline", description="FirstLine operator's command line")
    sub = parser.add_subparsers(dest="command", required=True)

    token = sub.add_parser("token", help="print a JWT valid for the running stack (last line: the token)")
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--sub", required=True, help="the person's id (resident_id, volunteer_id, ...)")
    token.add_argument("--grid-id", action="append", default=[], help="a grid the token may see (repeatable)")
    token.add_argument("--building-id", action="append", default=[], help="a building (repeatable)")
    token.add_argument("--department", help="partner department: health, police, property")
    token.add_argument("--ttl-hours", type=int)
    token.set_defaults(run=_token)

    topics = sub.add_parser("topics", help="create every catalog topic that is missing")
    topics.set_defaults(run=_topics)

    schemas = sub.add_parser("schemas", help="write the events' JSON Schemas (or --check them)")
    schemas.add_argument("--dir", default="docs/schemas")
    schemas.add_argument("--check", action="store_true")
    schemas.set_defaults(run=_schemas)

    migrations = sub.add_parser("migrations", help="database migrations")
    msub = migrations.add_subparsers(dest="action", required=True)
    revision = msub.add_parser("revision", help="autogenerate a revision from a service's models")
    revision.add_argument("service")
    revision.add_argument("-m", "--message", required=True)
    revision.set_defaults(run=_revision)
    upgrade = msub.add_parser("upgrade", help="bring a service's database to head (safe on several replicas at once)")
    upgrade.add_argument("service")
    upgrade.set_defaults(run=_migrations)
    current = msub.add_parser("current", help="print a service's database revision and the head")
    current.add_argument("service")
    current.add_argument("--check", action="store_true", help="exit 1 unless the database is at head")
    current.set_defaults(run=_migrations)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
