"""`firstline`: the operator's command line.

    firstline token --role grid_worker --sub gw-1 --grid-id G1
    firstline household-link R-0123456789abcdef   # the household's sign-in URL (its QR code)
    firstline qr --building B01 --out B01.pdf     # the building's A4 sheet of household QR codes
    firstline login-link --role building_lead --sub lead-1 --building-id B01 [--phone 139...]
    firstline keys rotate | retire                # the portal's signing keys
    firstline topics                    # create every catalog topic (idempotent)
    firstline schemas [--check]         # write or check docs/schemas/
    firstline migrations revision checkin -m "add column"
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from pathlib import Path

from common.auth import AUDIENCES, InvalidToken, Keyring, Role, operator_token
from common.settings import StackSettings


def _token(args: argparse.Namespace) -> int:
    """Signed with the portal's key file (FIRSTLINE_KEYS_DIR): only where that file is."""
    settings = StackSettings()
    try:
        token = operator_token(
            settings.keys_dir, sub=args.sub, role=args.role, audience=args.audience or AUDIENCES,
            grid_ids=args.grid_id, building_ids=args.building_id, department=args.department,
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
    response = httpx.request(method, settings.portal_url.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"}, timeout=120, **kwargs)
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
    body = {"role": args.role, "sub": args.sub, "phone": args.phone, "grid_ids": args.grid_id,
            "building_ids": args.building_id, "department": args.department}
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="firstline", description="FirstLine operator's command line")
    sub = parser.add_subparsers(dest="command", required=True)

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

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
