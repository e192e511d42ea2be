"""Nothing unbounded gets in: body limits, validation answers that never echo the input,
refused unknown fields, capped lists, bounded imports and per-subject rate limits."""

from __future__ import annotations

import io
import zipfile

SECRET_MARKER = "SENTINEL-7f3a"


async def test_a_body_over_the_limit_is_refused_unread(checkin_app):
    async with checkin_app(max_body_bytes=10_000) as checkin:
        padding = "x" * 20_000
        answer = await checkin.client.post(
            "/checkins",
            content=f'{{"resident_id": "{padding}", "temperature_c": 36.5}}',
            headers={**checkin.admin, "Content-Type": "application/json"},
        )
        assert answer.status_code == 413
        assert "10,000 bytes" in answer.json()["detail"]

        async def chunks():  # no Content-Length: the limit holds as the body streams in
            for _ in range(5):
                yield b"x" * 4_000

        streamed = await checkin.client.post(
            "/checkins", content=chunks(), headers={**checkin.admin, "Content-Type": "application/json"}
        )
        assert streamed.status_code == 413


async def test_a_validation_answer_names_the_field_without_echoing_the_input(checkin):
    answer = await checkin.client.post(
        "/checkins", json={"resident_id": "R1", "temperature_c": SECRET_MARKER}, headers=checkin.admin
    )
    assert answer.status_code == 422
    assert SECRET_MARKER not in answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "temperature_c"]

    resident = await checkin.client.post(
        "/residents", json={"name": SECRET_MARKER, "phone": SECRET_MARKER, "grid_id": "G1"}, headers=checkin.admin
    )
    assert resident.status_code == 422 and SECRET_MARKER not in resident.text
    assert ["body", "building_id"] in [error["loc"] for error in resident.json()["detail"]]


async def test_unknown_fields_and_overlong_lists_are_refused(checkin):
    resident_id = await checkin.register("张三", "101")
    unknown = await checkin.client.post(
        "/checkins", json={"resident_id": resident_id, "temperature_c": 36.5, "temperture": 39}, headers=checkin.admin
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["type"] == "extra_forbidden"
    many = await checkin.client.post(
        "/checkins",
        json={"resident_id": resident_id, "temperature_c": 36.5, "symptoms": ["cough"] * 21},
        headers=checkin.admin,
    )
    assert many.status_code == 422 and many.json()["detail"][0]["loc"] == ["body", "symptoms"]
    long_name = await checkin.client.post(
        "/residents",
        json={"name": "x", "phone": "1" * 5000, "grid_id": "G1", "building_id": "B01", "unit": "1", "room": "1"},
        headers=checkin.admin,
    )
    assert long_name.status_code == 422


def csv_file(*rows: str) -> dict:
    return {
        "file": (
            "居民.csv",
            ("姓名,楼栋-单元-房号,电话,网格\n" + "".join(f"{row}\n" for row in rows)).encode(),
            "text/csv",
        )
    }


async def test_an_upload_over_the_import_cap_is_refused_before_reading(checkin_app):
    async with checkin_app(import_max_bytes=50_000) as checkin:
        rows = [f"居民{n},B03-2-{n},13800000000,G1" for n in range(3000)]
        answer = await checkin.client.post("/residents/import", files=csv_file(*rows), headers=checkin.admin)
        assert answer.status_code == 413
        assert await checkin.outbox("ResidentRegistered") == []
        # The check-in route keeps the service's own (smaller) limit, the import its own
        small = await checkin.client.post(
            "/residents/import", files=csv_file("张三,B03-2-401,13800000000,G1"), headers=checkin.admin
        )
        assert small.status_code == 200, small.text


async def test_a_csv_field_over_the_csv_limit_is_a_422_naming_the_row(checkin):
    answer = await checkin.client.post(
        "/residents/import",
        files=csv_file("张三,B03-2-401,13800000000,G1", "李四," + "9" * 200_000 + ",1,G1"),
        headers=checkin.admin,
    )
    assert answer.status_code == 422, answer.text
    assert "row 3" in answer.json()["detail"]
    assert len(answer.content) < 1_000
    assert await checkin.outbox("ResidentRegistered") == []  # refused whole: nothing half-imported


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as workbook:
        workbook.writestr("[Content_Types].xml", "<Types/>")
        workbook.writestr("xl/worksheets/sheet1.xml", "<row/>" * 5_000_000)  # 30 MB of one repeated tag
    return buffer.getvalue()


async def test_an_xlsx_that_expands_past_the_cap_or_ratio_is_refused_without_parsing(checkin_app):
    bomb = zip_bomb()
    assert len(bomb) < 100_000
    async with checkin_app() as checkin:
        answer = await checkin.client.post(
            "/residents/import", files={"file": ("r.xlsx", bomb, "application/octet-stream")}, headers=checkin.admin
        )
        assert answer.status_code == 422 and "zip bomb" in answer.json()["detail"]
    async with checkin_app(import_xlsx_max_expanded_bytes=1_000_000) as checkin:
        answer = await checkin.client.post(
            "/residents/import", files={"file": ("r.xlsx", bomb, "application/octet-stream")}, headers=checkin.admin
        )
        assert answer.status_code == 422 and "expands to" in answer.json()["detail"]


async def test_rows_are_capped_and_the_reject_list_is_truncated_but_counted(checkin_app):
    async with checkin_app(import_max_rows=1500) as checkin:
        bad = [f"居民{n},nowhere,13800000000,G1" for n in range(1200)]
        answer = await checkin.client.post("/residents/import", files=csv_file(*bad), headers=checkin.admin)
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert report["rejected_total"] == 1200 and len(report["rejected"]) == 1000
        too_many = await checkin.client.post("/residents/import", files=csv_file(*bad, *bad), headers=checkin.admin)
        assert too_many.status_code == 422 and "more than 1,500 rows" in too_many.json()["detail"]


async def test_check_ins_and_imports_are_rate_limited_per_subject(checkin_app):
    async with checkin_app(checkin_rate_per_minute=60, checkin_rate_burst=3, import_rate_burst=1) as checkin:
        resident_id = await checkin.register("张三", "101")
        staff = checkin.as_("command", "cmd-1")
        for _ in range(3):
            ok = await checkin.client.post(
                "/checkins", json={"resident_id": resident_id, "temperature_c": 36.5}, headers=staff
            )
            assert ok.status_code == 201, ok.text
        limited = await checkin.client.post(
            "/checkins", json={"resident_id": resident_id, "temperature_c": 36.5}, headers=staff
        )
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "1"
        other = checkin.as_("command", "cmd-2")  # per subject: another desk is not held up
        assert (
            await checkin.client.post(
                "/checkins", json={"resident_id": resident_id, "temperature_c": 36.5}, headers=other
            )
        ).status_code == 201

        upload = csv_file("张三,B03-2-401,13800000000,G1")
        assert (await checkin.client.post("/residents/import", files=upload, headers=staff)).status_code == 200
        again = await checkin.client.post("/residents/import", files=upload, headers=staff)
        assert again.status_code == 429 and int(again.headers["Retry-After"]) > 0


async def test_the_default_limits_let_a_building_lead_check_in_a_whole_building(checkin):
    lead = checkin.as_("building_lead", "lead-B01", building_ids=["B01"])
    residents = [await checkin.register(f"居民{n}", str(n)) for n in range(30)]
    for _ in range(20):  # 600 check-ins in a burst: every household of a large building, and repeats
        for resident_id in residents:
            answer = await checkin.client.post(
                "/checkins", json={"resident_id": resident_id, "temperature_c": 36.5}, headers=lead
            )
            assert answer.status_code == 201, answer.text
