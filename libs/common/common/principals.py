"""Who may do what on Kafka, derived from the topic catalog.

- a service writes only the topics it produces (its events topic, its DLQ; command also
  the partner topics), reads only what it consumes (`topics.CONSUMES`), in consumer groups
  named with its name as prefix, and may create its own topics, nothing else;
- a partner department (`partner-health`, ...) reads only `partner.<department>.v1`, in
  groups whose name starts with `partner-<department>`;
- a follower (the portal) reads only the topics of `topics.FOLLOWS`, with no group;
- `operator` administers the cluster and reads every topic (operations, replays, tests).

`python -m common.principals plan` prints the plan deploy/kafka/Provision.java applies
(users, ACLs, topics), creating a random password for each principal that has none yet.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common import topics

OPERATOR = "operator"


@dataclass(frozen=True)
class Acl:
    resource: str  # TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID
    pattern: str  # LITERAL or PREFIXED
    name: str
    operation: str  # READ, WRITE, CREATE, ALL, ... (Read and Write imply Describe)


def partner_principal(department: str) -> str:
    return f"partner-{department}"


def principals() -> list[str]:
    return [*topics.SERVICES, *topics.FOLLOWS, *(partner_principal(d) for d in topics.PARTNERS), OPERATOR]


def acls(principal: str) -> list[Acl]:
    if principal == OPERATOR:
        return [Acl("CLUSTER", "LITERAL", "kafka-cluster", "ALL"), Acl("TOPIC", "LITERAL", "*", "ALL"),
                Acl("GROUP", "LITERAL", "*", "ALL"), Acl("TRANSACTIONAL_ID", "LITERAL", "*", "ALL")]  # fmt: skip
    if principal.startswith("partner-"):
        department = principal.removeprefix("partner-")
        if department not in topics.PARTNERS:
            raise KeyError(principal)
        return [Acl("TOPIC", "LITERAL", topics.partner_topic(department), "READ"),
                Acl("GROUP", "PREFIXED", principal, "READ")]  # fmt: skip
    if principal in topics.FOLLOWS:  # reads, with no group: nothing else
        return [Acl("TOPIC", "LITERAL", name, "READ") for name in topics.FOLLOWS[principal]]
    if principal not in topics.SERVICES:
        raise KeyError(principal)
    out: list[Acl] = []
    for topic in topics.produced_by(principal):
        out += [Acl("TOPIC", "LITERAL", topic.name, "WRITE"), Acl("TOPIC", "LITERAL", topic.name, "CREATE")]
    out += [Acl("TOPIC", "LITERAL", name, "READ") for name in topics.CONSUMES.get(principal, ())]
    if topics.CONSUMES.get(principal):
        out.append(Acl("GROUP", "PREFIXED", principal, "READ"))
    return out


def password_file(credentials_dir: Path, principal: str) -> Path:
    return credentials_dir / f"{principal}.json"


def password_variable(principal: str) -> str:
    """Where a deployment may set a principal's password (docker-compose does)."""
    return "FIRSTLINE_KAFKA_PASSWORD_" + principal.upper().replace("-", "_")


def ensure_password(credentials_dir: Path, principal: str) -> str:
    """The principal's password: the deployment's (its environment variable), or the one
    kept in its file, or a new random one (file mode 0600)."""
    path = password_file(credentials_dir, principal)
    given = os.environ.get(password_variable(principal))
    if path.is_file() and not given:
        return json.loads(path.read_text())["password"]
    credentials_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(credentials_dir, 0o700)
    password = given or secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"username": principal, "password": password}, out)
    tmp.replace(path)
    return password


def plan(credentials_dir: Path, replication_factor: int = 1) -> Iterator[str]:
    for principal in principals():
        yield "\t".join(("user", principal, ensure_password(credentials_dir, principal)))
        yield f"managed\tUser:{principal}"
        for acl in acls(principal):
            yield "\t".join(("acl", f"User:{principal}", acl.resource, acl.pattern, acl.name, acl.operation))
    for topic in topics.CATALOG:
        config = ";".join(f"{k}={v}" for k, v in topic.config(replication_factor).items())
        yield "\t".join(("topic", topic.name, str(topic.partitions), str(replication_factor), config))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m common.principals")
    parser.add_argument("command", choices=["plan"])
    parser.add_argument("--credentials-dir", type=Path, required=True)
    parser.add_argument("--replication-factor", type=int, default=1)
    args = parser.parse_args(argv)
    for line in plan(args.credentials_dir, args.replication_factor):
        sys.stdout.write(line + "\n")


if __name__ == "__main__":
    main()
