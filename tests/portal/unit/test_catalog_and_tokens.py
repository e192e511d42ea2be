"""Without I/O: every text a template uses is in both catalogs; the portal's codes; the
rules every service applies to tokens."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from common.auth import InvalidToken, Keyring, Verifier, issue_token
from portal import domain, i18n

TEMPLATES = Path(domain.__file__).parent / "templates"
KEY_USE = re.compile(r"""\bt\('([a-z_.]+[a-z_])'[,)]""")
PREFIX_USE = re.compile(r"""t\('([a-z_.]+\.)' \+ ([a-z_.]+)\)""")


def test_both_catalogs_have_the_same_keys():
    zh, en = i18n.catalog("zh"), i18n.catalog("en")
    assert set(zh) == set(en), f"only in one catalog: {sorted(set(zh) ^ set(en))}"
    assert all(zh.values()) and all(en.values())


def test_every_key_a_template_uses_is_in_both_catalogs():
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(KEY_USE.findall(template.read_text()))
    assert len(used) > 50
    for lang in i18n.LANGUAGES:
        missing = used - set(i18n.catalog(lang))
        assert not missing, f"{lang} misses {sorted(missing)}"
    # keys built from a value: each value the pages can show has its text
    for prefix, values in {
        "status.": ("checked_in", "needs_attention", "missing", "away"),
        "symptom.": __import__("portal.api", fromlist=["SYMPTOMS"]).SYMPTOMS,
        "category.": __import__("portal.api", fromlist=["CATEGORIES"]).CATEGORIES,
        "role.": ("resident", "building_lead", "grid_worker", "volunteer", "admin", "command", "partner"),
        "request_status.": (
            "pending",
            "awaiting_stock",
            "waiting_for_stock",
            "assigned",
            "planned",
            "fulfilled",
            "cancelled",
            "overdue",
        ),
    }.items():
        for lang in i18n.LANGUAGES:
            assert {prefix + v for v in values} <= set(i18n.catalog(lang)), (lang, prefix)


def test_a_household_code_is_signed():
    secret = b"s" * 32
    code = domain.household_code(secret, "abc")
    assert domain.nonce_of(secret, code) == "abc"
    assert domain.nonce_of(b"t" * 32, code) is None
    assert domain.nonce_of(secret, "abc.forged") is None


def test_one_time_codes():
    now = datetime(2026, 11, 21, tzinfo=UTC)
    check = dict(stored_hash="h", expires_at=now + timedelta(minutes=5), max_attempts=5, now=now)
    assert domain.check_otp(given_hash="h", attempts=0, **check) == domain.OtpCheck.ok
    assert domain.check_otp(given_hash="x", attempts=0, **check) == domain.OtpCheck.wrong
    assert domain.check_otp(given_hash="h", attempts=5, **check) == domain.OtpCheck.exhausted
    assert (
        domain.check_otp(given_hash="h", attempts=0, **{**check, "now": now + timedelta(minutes=5)})
        == domain.OtpCheck.expired
    )
    assert len(domain.new_otp()) == 6


def test_given_names():
    assert (
        domain.given_name("王芳") == "芳"
        and domain.given_name("欧阳娜娜") == "娜娜"
        and domain.given_name("Anna Li") == "Anna"
    )


@pytest.fixture
def keys(tmp_path):
    return Keyring.ensure(tmp_path)


def verifier_for(keys) -> Verifier:
    verifier = Verifier("checkin", jwks_url="")
    verifier.use_jwks(keys.jwks())
    return verifier


def test_tokens_carry_a_kid_and_an_audience(keys):
    token = issue_token(keys.current(), sub="R1", role="resident", audience="checkin", now=datetime.now(UTC))
    assert jwt.get_unverified_header(token)["kid"] == keys.current().kid
    assert verifier_for(keys).verify(token).sub == "R1"
    other = Verifier("dispatch", jwks_url="")
    other.use_jwks(keys.jwks())
    with pytest.raises(InvalidToken, match="not meant for dispatch"):
        other.verify(token)


def test_a_token_over_the_lifetime_cap_or_without_iat_is_refused(keys):
    with pytest.raises(ValueError):
        issue_token(
            keys.current(), sub="R1", role="resident", audience="checkin", now=datetime.now(UTC), ttl=timedelta(hours=1)
        )
    now = int(datetime.now(UTC).timestamp())
    key = keys.current()
    long_lived = jwt.encode(
        {"iss": "firstline", "sub": "R1", "role": "resident", "aud": "checkin", "iat": now, "exp": now + 3600},
        key.private_key,
        algorithm="EdDSA",
        headers={"kid": key.kid},
    )
    with pytest.raises(InvalidToken, match="longer than 15 minutes"):
        verifier_for(keys).verify(long_lived)
    no_iat = jwt.encode(
        {"iss": "firstline", "sub": "R1", "role": "resident", "aud": "checkin", "exp": now + 60},
        key.private_key,
        algorithm="EdDSA",
        headers={"kid": key.kid},
    )
    with pytest.raises(InvalidToken, match="iat"):
        verifier_for(keys).verify(no_iat)


def test_the_old_shared_secret_opens_nothing(keys):
    now = int(datetime.now(UTC).timestamp())
    hs = jwt.encode(
        {"iss": "firstline", "sub": "x", "role": "admin", "aud": "checkin", "iat": now, "exp": now + 60},
        "firstline-development-secret-do-not-use-in-production",
        algorithm="HS256",
    )
    with pytest.raises(InvalidToken):
        verifier_for(keys).verify(hs)


def test_rotation_publishes_the_new_key_before_it_signs_and_keeps_the_old_one(keys):
    old = keys.current()
    now = datetime.now(UTC)
    new = keys.rotate(now)
    assert keys.current(now).kid == old.kid  # not yet published long enough
    assert {k["kid"] for k in keys.jwks()["keys"]} == {old.kid, new.kid}
    assert keys.current(now + timedelta(minutes=2)).kid == new.kid
    verifier = verifier_for(keys)
    for key in (old, new):
        assert (
            verifier.verify(issue_token(key, sub="a", role="admin", audience="checkin", now=datetime.now(UTC))).sub
            == "a"
        )


def test_a_revoked_session_is_refused_and_an_unreachable_list_fails_closed(keys):
    verifier = Verifier("checkin", jwks_url="", revocations_url="http://portal/x", revocations_max_age_s=30)
    verifier.use_jwks(keys.jwks())
    token = issue_token(
        keys.current(), sub="R1", role="resident", audience="checkin", now=datetime.now(UTC), session_id="s1"
    )
    with pytest.raises(InvalidToken, match="cannot confirm"):
        verifier.verify(token)  # no list yet
    verifier.use_revocations([])
    assert verifier.verify(token).sub == "R1"
    verifier.use_revocations(["s1"])
    with pytest.raises(InvalidToken, match="ended"):
        verifier.verify(token)


async def test_an_external_oidc_issuer_is_found_by_discovery_and_its_tokens_verify():
    import httpx
    from cryptography.hazmat.primitives.asymmetric import rsa

    issuer = "https://sso.city.example/realms/community"
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {
        **jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True),
        "kid": "city-1",
        "use": "sig",
        "alg": "RS256",
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json={"issuer": issuer, "jwks_uri": f"{issuer}/protocol/openid-connect/certs"})
        if request.url.path.endswith("/certs"):
            return httpx.Response(200, json={"keys": [jwk]})
        return httpx.Response(404)

    verifier = Verifier("checkin", jwks_url="", issuer=issuer)
    verifier._client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    await verifier.refresh_keys()
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": issuer,
        "sub": "gw-1",
        "aud": "checkin",
        "iat": now,
        "exp": now + 300,
        "role": "grid_worker",
        "grid_ids": ["G1"],
    }
    token = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "city-1"})
    assert verifier.verify(token).grid_ids == ["G1"]
    with pytest.raises(InvalidToken):  # the same key, another issuer
        verifier.verify(
            jwt.encode(
                {**claims, "iss": "https://elsewhere.example"}, private, algorithm="RS256", headers={"kid": "city-1"}
            )
        )
    await verifier.stop()
