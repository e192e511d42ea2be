"""`firstline import FILE` against the check-in service over HTTP: progress, then totals."""

from __future__ import annotations

import asyncio
import json
import socket

import uvicorn

from checkin.main import create_app
from checkin.settings import CheckinSettings
from common.cli import main
from support import AppHarness, wait_for

ROWS = 5
CSV = "姓名,楼栋-单元-房号,电话,网格\n王芳,B03-2-401,13800000001,G1\n李雷,B03-2-402,13800000002,G1\n坏行,B03-2,13800000003,G1\n韩梅梅,B03-2-404,13800000004,G1\n张伟,B03-2-405,13800000005,G1\n".encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_firstline_import_uploads_follows_the_job_and_prints_the_totals(database_url, clock, tmp_path, capsys):
    settings = CheckinSettings(database_url=database_url, jobs_interval_s=0, kafka_enabled=False, import_chunk_rows=2)
    app = create_app(settings, clock=clock)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, what="the check-in service to start")
        register = tmp_path / "居民花名册.csv"
        register.write_bytes(CSV)
        token = AppHarness(app, clock, None).as_("admin", "admin-1")["Authorization"].removeprefix("Bearer ")
        argv = ["import", str(register), "--url", f"http://127.0.0.1:{port}", "--token", token,
                "--every-s", "0.05"]  # fmt: skip
        assert await asyncio.to_thread(main, argv) == 0
        out, err = capsys.readouterr()
        totals = json.loads(out.strip().splitlines()[-1])
        assert totals == {"file": "居民花名册.csv", "rows": ROWS, "imported": ROWS - 1, "unchanged": 0, "rejected": 1}
        assert "row 4: address" in err and f"{ROWS}/{ROWS}" in err  # the bar's last state, and the rejected row

        assert await asyncio.to_thread(main, argv) == 0  # the same file again changes nothing
        totals = json.loads(capsys.readouterr()[0].strip().splitlines()[-1])
        assert (totals["imported"], totals["unchanged"]) == (0, ROWS - 1)

        refused = ["import", str(register), "--url", f"http://127.0.0.1:{port}", "--token", "not-a-token"]
        assert await asyncio.to_thread(main, refused) == 1
        assert "import refused (401)" in capsys.readouterr()[1]
    finally:
        server.should_exit = True
        await serving
