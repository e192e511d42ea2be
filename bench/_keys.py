"""A signing key for a benchmark's run, trusted by the services it starts (as the tests'
is): FIRSTLINE_KEYS_DIR, and the JWKS as a file. Call `use_bench_keys()` before building
settings or starting services."""

from __future__ import annotations

import json
import os
import tempfile

from common.auth import Keyring


def use_bench_keys() -> str:
    if os.environ.get("FIRSTLINE_KEYS_DIR") and os.environ.get("FIRSTLINE_JWKS_URL", "").startswith("file:"):
        return os.environ["FIRSTLINE_KEYS_DIR"]
    keys = tempfile.mkdtemp(prefix="firstline-bench-keys-")
    keyring = Keyring.ensure(keys)
    with open(os.path.join(keys, "jwks.json"), "w") as out:
        json.dump(keyring.jwks(), out)
    os.environ["FIRSTLINE_KEYS_DIR"] = keys
    os.environ["FIRSTLINE_JWKS_URL"] = f"file://{keys}/jwks.json"
    os.environ["FIRSTLINE_REVOCATIONS_URL"] = ""
    return keys
