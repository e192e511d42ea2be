"""`firstline`: the operator's command line.

firstline import 居民花名册.xlsx       # import a register into check-in, with a progress bar
firstline token --role grid_worker --sub gw-1 --grid-id G1
firstline household-link R-0123456789abcdef   # the household's sign-in URL (its QR code)
firstline qr --building B01 --out B01.pdf     # the building's A4 sheet of household QR codes
firstline login-link --role building_lead --sub lead-1 --building-id B01 [--phone 139...]
firstline keys rotate | retire                # the portal's signing keys
firstline topics                    # create every catalog topic (idempotent)
firstline kafka-credentials partner-health   # aiokafka keyword arguments, as JSON
firstline dlq list command          # the dead letters of a service
firstline dlq replay command [--id EVENT_ID ...]   # back onto their origin topics
firstline schemas [--check]         # write or check docs/schemas/
firstline asyncapi [--check]        # write or check docs/asyncapi/ (every service's AsyncAPI)
firstline migrations revision checkin -m "add column"
firstline migrations upgrade checkin    # a deploy step: bring its database to head, once
firstline migrations current checkin [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from pathlib import Path

from common.auth import AUDIENCES, InvalidToken, Keyring, Role, operator_token
from common.settings import StackSettings


def _token(args: argparse.Namespace) -> int:
    """Signed with the portal's key file (FIRSTLINE_KEYS_DIR): only where that file is."""
    settings = StackSettings()
    try:
        token = operator_token(
            settings.keys_dir,
            sub=args.sub,
            role=args.role,
            audience=args.audience or AUDIENCES,
            grid_ids=args.grid_id,
            building_ids=args.building_id,
            department=args.department,
        )
    except InvalidToken as exc:
        print(f"firstline token: {exc}", file=sys.stderr)
        return 1
    print(f"# {args.role} {args.sub}: Authorization: Bearer <token below> (valid 15 minutes)", file=sys.stderr)
    print(token)
    return 0


def _portal(settings: StackSettings, method: str, path: str, **kwargs):
    """A call to the running portal's admin API as the operator (the portal's key file)."""
    import httpx

    token = operator_token(settings.keys_dir, sub="operator", role=Role.admin, audience="portal")
    response = httpx.request(
        method,
        settings.portal_url.rstrip("/") + path,
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
        **kwargs,
    )
    if response.status_code >= 400:
        raise SystemExit(f"portal answered {response.status_code}: {response.text[:300]}")
    return response


def _household_link(args: argparse.Namespace) -> int:
    answer = _portal(StackSettings(), "POST", f"/admin/households/{args.id}/link", json={"renew": args.renew}).json()
    print(f"# household {answer['household_id']}: its QR code opens", file=sys.stderr)
    print(answer["url"])
    return 0


def _qr(args: argparse.Namespace) -> int:
    pdf = _portal(StackSettings(), "GET", f"/admin/buildings/{args.building}/qr.pdf").content
    out = Path(args.out or f"qr-{args.building}.pdf")
    out.write_bytes(pdf)
    print(out)
    return 0


def _login_link(args: argparse.Namespace) -> int:
    body = {
        "role": args.role,
        "sub": args.sub,
        "phone": args.phone,
        "grid_ids": args.grid_id,
        "building_ids": args.building_id,
        "department": args.department,
    }
    answer = _portal(StackSettings(), "POST", "/admin/invitations", json=body).json()
    print(f"# {args.role} {args.sub}: a one-time sign-in link", file=sys.stderr)
    print(answer["url"])
    return 0


def _keys(args: argparse.Namespace) -> int:
    keyring = Keyring(StackSettings().keys_dir)
    if args.action == "rotate":
        print(keyring.rotate().kid)
    else:
        print(json.dumps({"retired": keyring.retire()}))
    return 0


def _topics(_: argparse.Namespace) -> int:
    from common.kafka import client_kwargs
    from common.principals import OPERATOR
    from common.topics import ensure_topics

    settings = StackSettings()
    created = asyncio.run(ensure_topics(client_kwargs(settings, OPERATOR), settings.kafka_replication_factor))
    print(json.dumps({"created": created}))
    return 0


def _kafka_credentials(args: argparse.Namespace) -> int:
    from common.kafka import MissingCredentials, credentials
    from common.principals import principals

    if args.principal not in principals():
        print(f"unknown principal {args.principal!r}; one of: {', '.join(principals())}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(credentials(StackSettings(), args.principal), indent=2))
    except MissingCredentials as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def _dlq(args: argparse.Namespace) -> int:
    from common import dlq

    settings = StackSettings()
    if args.action == "list":
        for letter in asyncio.run(dlq.read(settings, args.service)):
            print(json.dumps(letter.summary(), ensure_ascii=False))
        return 0
    replayed = asyncio.run(dlq.replay(settings, args.service, set(args.id) or None))
    print(json.dumps({"replayed": replayed}))
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


def _service_asyncapi(service: str) -> dict | None:
    """Build the service's app as it runs (nothing connects) and ask its runtime; None for a
    service with no Kafka runtime."""
    import inspect
    import tempfile

    from common.settings import ServiceSettings

    main = importlib.import_module(f"{service}.main")
    module = importlib.import_module(f"{service}.settings")
    (settings_class,) = [c for _, c in inspect.getmembers(module, inspect.isclass)
                         if issubclass(c, ServiceSettings) and c.__module__ == module.__name__]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_class(database_url=f"sqlite+aiosqlite:///{tmp}/doc.db", kafka_enabled=False,
                                  jobs_interval_s=0, _env_file=None)  # fmt: skip
        runtime = getattr(main.create_app(settings).state, "runtime", None)
        return runtime.asyncapi() if runtime is not None else None


def _asyncapi(args: argparse.Namespace) -> int:
    from common.asyncapi import page
    from common.topics import SERVICES

    if args.service:  # one service per process: the services' tables share SQLModel's metadata
        print(json.dumps(_service_asyncapi(args.service)))
        return 0
    import subprocess

    root = Path(args.dir)
    stale = []
    for service in SERVICES:
        out = subprocess.run([sys.executable, "-m", "common.cli", "asyncapi", "--service", service],
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
        doc = json.loads(out)
        if doc is None:
            continue
        files = {root / f"{service}.json": json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
                 root / f"{service}.html": page(doc)}  # fmt: skip
        for path, text in files.items():
            if args.check:
                if not path.exists() or path.read_text() != text:
                    stale.append(str(path))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                print(path)
    if stale:
        print("AsyncAPI documents out of date (run `firstline asyncapi`):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    if args.check:
        print("AsyncAPI documents up to date")
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
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, ServiceSettings) and c is not ServiceSettings
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

    imports = sub.add_parser("import", help="import a register (CSV or XLSX) into check-in, with a progress bar")
    imports.add_argument("file")
    imports.add_argument("--url", help="the check-in service (default http://127.0.0.1:$CHECKIN_PORT, port 8001)")
    imports.add_argument("--token", help="a bearer token (default $FIRSTLINE_TOKEN, else an operator's admin token)")
    imports.add_argument("--every-s", type=float, default=0.5, help="how often to ask for progress")
    imports.add_argument("--timeout-s", type=float, default=120.0)
    imports.set_defaults(run=_import)

    token = sub.add_parser("token", help="print a JWT valid for the running stack (last line: the token)")
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--sub", required=True, help="the person's id (resident_id, volunteer_id, ...)")
    token.add_argument("--grid-id", action="append", default=[], help="a grid the token may see (repeatable)")
    token.add_argument("--building-id", action="append", default=[], help="a building (repeatable)")
    token.add_argument("--department", help="partner department: health, police, property")
    token.add_argument("--audience", action="append", help="a service (repeatable); default: every service")
    token.set_defaults(run=_token)

    link = sub.add_parser("household-link", help="print a household's sign-in URL (last line: the URL)")
    link.add_argument("id", help="a household id (H.<building>.<unit>.<room>) or a resident id")
    link.add_argument("--renew", action="store_true", help="revoke the current code and issue a new one")
    link.set_defaults(run=_household_link)

    qr = sub.add_parser("qr", help="write the A4 PDF of a building's household QR codes")
    qr.add_argument("--building", required=True)
    qr.add_argument("--out", help="the PDF file (default qr-<building>.pdf)")
    qr.set_defaults(run=_qr)

    invite = sub.add_parser("login-link", help="print a one-time sign-in URL for a staff member, volunteer or desk")
    invite.add_argument("--role", required=True, choices=[r.value for r in Role])
    invite.add_argument("--sub", required=True)
    invite.add_argument("--phone", help="their phone: later sign-ins by phone and code")
    invite.add_argument("--grid-id", action="append", default=[])
    invite.add_argument("--building-id", action="append", default=[])
    invite.add_argument("--department")
    invite.set_defaults(run=_login_link)

    keys = sub.add_parser("keys", help="the portal's signing keys: rotate (add a key) or retire (drop old keys)")
    keys.add_argument("action", choices=["rotate", "retire"])
    keys.set_defaults(run=_keys)

    topics = sub.add_parser("topics", help="create every catalog topic that is missing")
    topics.set_defaults(run=_topics)

    creds = sub.add_parser("kafka-credentials", help="print a principal's Kafka client settings (JSON)")
    creds.add_argument("principal", help="a service, partner-health, partner-police, partner-property or operator")
    creds.set_defaults(run=_kafka_credentials)

    dlq = sub.add_parser("dlq", help="inspect or replay a service's dead letters (as operator)")
    dsub = dlq.add_subparsers(dest="action", required=True)
    for action, text in (("list", "print each dead letter: origin, reason, event"),
                         ("replay", "publish dead letters again on their origin topics")):  # fmt: skip
        cmd = dsub.add_parser(action, help=text)
        cmd.add_argument("service")
        if action == "replay":
            cmd.add_argument("--id", action="append", default=[], help="only this event id (repeatable)")
        cmd.set_defaults(run=_dlq)

    schemas = sub.add_parser("schemas", help="write the events' JSON Schemas (or --check them)")
    schemas.add_argument("--dir", default="docs/schemas")
    schemas.add_argument("--check", action="store_true")
    schemas.set_defaults(run=_schemas)

    asyncapi = sub.add_parser("asyncapi", help="write every service's AsyncAPI document (or --check them)")
    asyncapi.add_argument("--dir", default="docs/asyncapi")
    asyncapi.add_argument("--check", action="store_true")
    asyncapi.add_argument("--service", help="print one service's document (JSON) instead")
    asyncapi.set_defaults(run=_asyncapi)

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


def _import(args: argparse.Namespace) -> int:
    """Upload a register to the check-in service as a background job and follow it with a
    progress bar until it is done; then print what was rejected and the totals."""
    import time

    import httpx
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    path = Path(args.file)
    if not path.is_file():
        print(f"no file {path}", file=sys.stderr)
        return 2
    url = args.url or f"http://127.0.0.1:{os.environ.get('CHECKIN_PORT', '8001')}"
    token = args.token or os.environ.get("FIRSTLINE_TOKEN") or _operator_token()
    console = Console(stderr=True)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=args.timeout_s) as client:
        try:
            answer = client.post(
                "/residents/import", files={"file": (path.name, path.read_bytes())}, headers={"Prefer": "respond-async"}
            )
        except httpx.HTTPError as exc:
            print(f"cannot reach the check-in service at {url}: {exc}", file=sys.stderr)
            return 1
        if answer.status_code not in (200, 202):
            print(f"import refused ({answer.status_code}): {answer.text}", file=sys.stderr)
            return 1
        job = answer.json()
        if answer.status_code == 202:
            counts = "imported {task.fields[imported]} · unchanged {task.fields[unchanged]} · rejected {task.fields[rejected]}"
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(counts),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console) as progress:
                bar = progress.add_task(path.name, total=job["rows_total"], imported=0, unchanged=0, rejected=0)
                while True:
                    progress.update(bar, completed=job["rows_done"], imported=job["imported"],
                                    unchanged=job["unchanged"], rejected=len(job["rejected"]))  # fmt: skip
                    if job["status"] in ("done", "failed"):
                        break
                    time.sleep(args.every_s)
                    job = client.get(answer.headers["Location"]).json()
            if job["status"] == "failed":
                print(f"import failed: {job['error']}", file=sys.stderr)
        total = job.get("rows_total", job.get("total"))
    for rejected in job["rejected"]:
        print(f"row {rejected['row']}: {rejected['reason']}", file=sys.stderr)
    print(json.dumps({"file": path.name, "rows": total, "imported": job["imported"], "unchanged": job["unchanged"],
                      "rejected": len(job["rejected"])}, ensure_ascii=False))  # fmt: skip
    return 1 if job.get("status") == "failed" else 0


def _operator_token() -> str:
    """What `firstline token --role admin --sub operator` prints (its last line)."""
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        main(["token", "--role", "admin", "--sub", "operator"])
    return printed.getvalue().strip().splitlines()[-1]


if __name__ == "__main__":
    raise SystemExit(main())
