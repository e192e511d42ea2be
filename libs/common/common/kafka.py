"""Connecting to Kafka: every client in the project (a service's FastStream broker and relay
producer, probes, the `firstline` command, tests, benchmarks, the demo) is built from
`client_kwargs(settings, principal)`, so all of them authenticate the same way.

A principal is a service name, `partner-<department>` or `operator` (see
`common.principals`). Its credentials are `<KAFKA_CREDENTIALS_DIR>/<principal>.json`
(written by deploy/kafka/kafka.sh for the local broker), or KAFKA_USERNAME/KAFKA_PASSWORD
where no such file exists (a container, a managed cluster).
"""

from __future__ import annotations

import functools
import json
import ssl
from pathlib import Path
from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from common.settings import StackSettings

_SECURITY = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}


class MissingCredentials(ValueError):
    """No usable credentials for a principal: the message says what to set or create."""


def _sasl(settings: StackSettings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL_")


def _tls(settings: StackSettings) -> bool:
    return settings.kafka_security_protocol in ("SASL_SSL", "SSL")


def credentials(settings: StackSettings, principal: str) -> dict[str, Any]:
    """The JSON `firstline kafka-credentials` prints: aiokafka keyword arguments, with the CA
    as a file name (`ssl_cafile`) instead of an SSL context."""
    out: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if _sasl(settings):
        username, password = _user(settings, principal)
        out |= {"sasl_mechanism": settings.kafka_sasl_mechanism, "sasl_plain_username": username,
                "sasl_plain_password": password}  # fmt: skip
    if _tls(settings):
        if settings.kafka_ssl_cafile and not Path(settings.kafka_ssl_cafile).is_file():
            raise MissingCredentials(
                f"KAFKA_SSL_CAFILE {settings.kafka_ssl_cafile} does not exist: start the local broker "
                "(deploy/kafka/kafka.sh start creates its CA) or point KAFKA_SSL_CAFILE at your cluster's CA"
            )
        out["ssl_cafile"] = settings.kafka_ssl_cafile or None
    return out


def client_kwargs(settings: StackSettings, principal: str, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer/Consumer/AdminClient, as `principal`."""
    kwargs = credentials(settings, principal)
    cafile = kwargs.pop("ssl_cafile", None)
    if _tls(settings):
        kwargs["ssl_context"] = ssl_context(cafile)
    return kwargs | extra


def broker_security(settings: StackSettings, principal: str) -> BaseSecurity | None:
    """The same credentials as FastStream's `KafkaBroker(security=...)`."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings.kafka_ssl_cafile or None) if _tls(settings) else None
    if not _sasl(settings):
        return BaseSecurity(ssl_context=context, use_ssl=True)
    username, password = _user(settings, principal)
    return _SECURITY[settings.kafka_sasl_mechanism](username, password, ssl_context=context, use_ssl=_tls(settings))


@functools.cache  # one context per CA file: building one reads and parses the certificate
def ssl_context(cafile: str | None) -> ssl.SSLContext:
    return create_ssl_context(cafile=cafile)


def _user(settings: StackSettings, principal: str) -> tuple[str, str]:
    path = Path(settings.kafka_credentials_dir) / f"{principal}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        return stored["username"], stored["password"]
    if settings.kafka_username and settings.kafka_password:
        return settings.kafka_username, settings.kafka_password
    raise MissingCredentials(
        f"no Kafka credentials for principal {principal!r}: {path} does not exist and KAFKA_USERNAME/"
        f"KAFKA_PASSWORD are not set ({settings.kafka_security_protocol} needs them; the local broker's "
        "are created by deploy/kafka/kafka.sh start)"
    )
