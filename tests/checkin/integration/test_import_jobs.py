"""Register imports with `Prefer: respond-async`: a job that reports progress, kept in the database."""

from __future__ import annotations

from checkin import importing
from checkin.models import ImportJob
from support import wait_for

ROWS = 7
CSV = ("姓名,楼栋-单元-房号,电话,网格\n" + "".join(
    f"居民{n},B03-2-{400 + n},1380000000{n},G1\n" if n != 4 else "坏行,B03-2,13800000004,G1\n" for n in range(1, ROWS + 1)
)).encode()  # fmt: skip
ASYNC = {"Prefer": "respond-async"}


async def finished(harness, location: str, headers: dict) -> dict:
    async def done():
        job = (await harness.client.get(location, headers=headers)).json()
        return job if job["status"] in ("done", "failed") else None

    return await wait_for(done, what=f"{location} to finish")


async def test_an_async_import_answers_a_job_that_counts_as_it_goes(checkin_app):
    async with checkin_app(import_chunk_rows=2) as checkin:
        files = {"file": ("居民.csv", CSV, "text/csv")}
        started = await checkin.client.post("/residents/import", files=files, headers={**checkin.admin, **ASYNC})
        assert started.status_code == 202, started.text
        assert started.headers["Preference-Applied"] == "respond-async"
        job = started.json()
        location = started.headers["Location"]
        assert location == f"/imports/{job['job_id']}"
        assert job["status"] == "queued" and job["rows_total"] == ROWS and job["file"] == "居民.csv"

        report = await finished(checkin, location, checkin.admin)
        assert report["status"] == "done", report
        assert (report["rows_done"], report["imported"], report["unchanged"]) == (ROWS, ROWS - 1, 0)
        assert [r["row"] for r in report["rejected"]] == [5] and report["finished_at"]
        assert len(await checkin.outbox("ResidentRegistered")) == ROWS - 1

        # The same file again changes nothing.
        again = await checkin.client.post("/residents/import", files=files, headers={**checkin.admin, **ASYNC})
        report = await finished(checkin, again.headers["Location"], checkin.admin)
        assert (report["imported"], report["unchanged"], len(report["rejected"])) == (0, ROWS - 1, 1)
        assert len(await checkin.outbox("ResidentRegistered")) == ROWS - 1

        # The job lives in the database: another replica answers it as well.
        async with checkin_app() as other:
            assert (await other.client.get(location, headers=other.admin)).json()["status"] == "done"


async def test_progress_is_told_after_every_chunk(checkin_app):
    async with checkin_app(import_chunk_rows=2) as checkin:
        seen = []

        async def progress(report):
            seen.append((report.total, report.imported, len(report.rejected)))

        await checkin.service.import_residents(importing.read_rows("r.csv", CSV), progress=progress)
        assert seen == [(2, 2, 0), (4, 3, 1), (6, 5, 1), (7, 6, 1)]


async def test_without_the_preference_the_answer_is_the_report_as_before(checkin):
    files = {"file": ("r.csv", CSV, "text/csv")}
    answer = await checkin.client.post(
        "/residents/import", files=files, headers={**checkin.admin, "Prefer": "return=minimal"}
    )
    assert answer.status_code == 200 and answer.json()["imported"] == ROWS - 1


async def test_a_job_is_its_submitters_and_a_bad_file_is_refused_at_once(checkin):
    worker = checkin.as_("grid_worker", "W-1", grid_ids=["G1"])
    started = await checkin.client.post(
        "/residents/import", files={"file": ("r.csv", CSV, "text/csv")}, headers={**worker, **ASYNC}
    )
    location = started.headers["Location"]
    assert (await finished(checkin, location, worker))["imported"] == ROWS - 1
    stranger = checkin.as_("grid_worker", "W-2", grid_ids=["G1"])
    assert (await checkin.client.get(location, headers=stranger)).status_code == 404
    assert (await checkin.client.get("/imports/I-unknown", headers=stranger)).status_code == 404
    assert (await checkin.client.get(location, headers=checkin.admin)).status_code == 200
    bad = await checkin.client.post(
        "/residents/import", files={"file": ("r.pdf", b"%PDF", "application/pdf")}, headers={**worker, **ASYNC}
    )
    assert bad.status_code == 422 and ".csv or .xlsx" in bad.text


async def test_a_job_whose_replica_went_away_is_marked_failed(checkin):
    now = checkin.clock.now()
    async with checkin.runtime.work() as uow:
        uow.session.add(ImportJob(job_id="I-lost", filename="r.csv", submitted_by="admin-1", status="running",
                                  rows_total=10, rows_done=4, created_at=now, updated_at=now))  # fmt: skip
    assert await checkin.service.fail_interrupted_imports() == 0
    checkin.clock.advance(minutes=11)
    assert await checkin.service.fail_interrupted_imports() == 1
    job = (await checkin.client.get("/imports/I-lost", headers=checkin.admin)).json()
    assert job["status"] == "failed" and "import the file again" in job["error"] and job["rows_done"] == 4


async def test_a_job_stopped_with_its_process_says_so_at_once(checkin_app):
    async with checkin_app(import_chunk_rows=1) as checkin:
        rows = "姓名,楼栋-单元-房号,电话,网格\n" + "".join(f"居民{n},B09-1-{n},13800000000,G1\n" for n in range(1, 400))
        files = {"file": ("big.csv", rows.encode(), "text/csv")}
        location = (
            await checkin.client.post("/residents/import", files=files, headers={**checkin.admin, **ASYNC})
        ).headers["Location"]

        async def under_way():
            job = (await checkin.client.get(location, headers=checkin.admin)).json()
            return job["status"] == "running" and 0 < job["rows_done"] < job["rows_total"]

        await wait_for(under_way, what="the import to be under way")
        await checkin.service.imports.stop()
        job = (await checkin.client.get(location, headers=checkin.admin)).json()
        assert job["status"] == "failed" and job["error"].startswith("interrupted") and job["rows_done"] < 399
