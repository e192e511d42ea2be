"""Reading the resident spreadsheets communities already keep (CSV or XLSX).

Headers may be English or Chinese (姓名, 楼栋-单元-房号, 电话, 网格, 标签, 纬度, 经度, 户);
the address may be one column ("B03-2-401") or three (楼栋, 单元, 房号). Row numbers are
the ones the spreadsheet shows (the header is row 1).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from python_calamine import CalamineWorkbook

from checkin import domain
from common.errors import Invalid

HEADERS = {
    "name": ("name", "姓名"),
    "address": ("address", "住址", "地址", "楼栋-单元-房号", "门牌"),
    "building_id": ("building", "building_id", "楼栋", "楼号"),
    "unit": ("unit", "单元"),
    "room": ("room", "房号", "房间", "室"),
    "phone": ("phone", "电话", "手机", "联系电话"),
    "grid_id": ("grid", "grid_id", "网格"),
    "community_id": ("community", "community_id", "社区"),
    "tags": ("tags", "标签", "人群", "重点人群"),
    "lat": ("lat", "latitude", "纬度"),
    "lon": ("lon", "lng", "longitude", "经度"),
    "registered_on": ("registered_on", "registration_date", "登记日期"),
    "household": ("household", "户", "户号", "家庭"),  # when a household is not one room (see domain.household_of)
}
_ALIASES = {alias.lower(): field for field, aliases in HEADERS.items() for alias in aliases}


@dataclass(frozen=True)
class Bounds:
    """How much a register may hold: rows, and what an XLSX may expand to."""

    max_rows: int = 200_000
    xlsx_max_expanded_bytes: int = 150_000_000
    xlsx_max_ratio: float = 200.0  # uncompressed / compressed size of any one entry


def read_rows(filename: str, content: bytes, bounds: Bounds | None = None) -> Iterator[tuple[int, dict]]:
    """(row number, fields) for every non-empty row; raises Invalid for an unreadable file,
    or one larger than `bounds` (an XLSX is checked from its zip directory before parsing)."""
    bounds = bounds or Bounds()
    lower = (filename or "").lower()
    if lower.endswith(".xlsx"):
        _check_expansion(content, bounds)
        raw = _xlsx_rows(content)
    elif lower.endswith(".csv") or lower.endswith(".txt"):
        raw = _csv_rows(content)
    else:
        raise Invalid(f"unsupported file {filename!r}: upload a .csv or .xlsx file")
    try:
        header = next(raw)
    except StopIteration as exc:
        raise Invalid("the file is empty") from exc
    columns = [_ALIASES.get(str(h or "").strip().lower()) for h in header]
    if "name" not in columns:
        raise Invalid(f"no name column (姓名) in header {header!r}")
    for number, values in enumerate(raw, start=2):
        if number > bounds.max_rows + 1:
            raise Invalid(f"the file has more than {bounds.max_rows:,} rows: split it into smaller files")
        if not any(v not in (None, "") for v in values):
            continue
        fields = {col: _text(v) for col, v in zip(columns, values, strict=False) if col}
        yield number, _with_address(fields)


def _with_address(fields: dict) -> dict:
    address = fields.pop("address", None)
    if address and not (fields.get("building_id") and fields.get("unit") and fields.get("room")):
        try:
            fields["building_id"], fields["unit"], fields["room"] = domain.parse_address(address)
        except Invalid:
            fields["building_id"] = fields["unit"] = fields["room"] = None
            fields["_address_error"] = address
    return fields


def _text(value) -> str | None:
    if value is None:
        return None
    if hasattr(value, "date") and callable(value.date):  # an Excel date cell
        return value.date().isoformat()
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # phone numbers and rooms typed as numbers
    return str(value).strip()


def _csv_rows(content: bytes) -> Iterator[list]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = content.decode("gb18030")  # what Excel in China saves as CSV
        except UnicodeDecodeError as exc:
            raise Invalid("the CSV file is neither UTF-8 nor GB18030 text") from exc
    reader = csv.reader(io.StringIO(text))
    try:
        yield from reader
    except csv.Error as exc:
        # e.g. a field longer than the csv module's limit (128 KiB): the file is refused, naming the row
        raise Invalid(f"row {reader.line_num}: not readable as CSV ({exc})") from None


def _check_expansion(content: bytes, bounds: Bounds) -> None:
    """Refuses a workbook whose entries would expand past the bounds, from the sizes its zip
    directory declares (a zip bomb is refused without inflating it)."""
    try:
        entries = zipfile.ZipFile(io.BytesIO(content)).infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise Invalid("not a readable .xlsx file: it is not a zip archive") from exc
    expanded = sum(entry.file_size for entry in entries)
    if expanded > bounds.xlsx_max_expanded_bytes:
        raise Invalid(
            f"the workbook expands to {expanded:,} bytes, more than {bounds.xlsx_max_expanded_bytes:,}: split it"
        )
    for entry in entries:
        if entry.file_size > 1_000_000 and entry.file_size > bounds.xlsx_max_ratio * max(entry.compress_size, 1):
            raise Invalid(
                f"the workbook's {entry.filename} expands {entry.file_size / max(entry.compress_size, 1):,.0f}-fold: "
                "refused as a likely zip bomb"
            )


def _xlsx_rows(content: bytes) -> Iterator[list]:
    # calamine (Rust) reads a large register far faster than openpyxl (docs/performance.md).
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(content))
        sheet = workbook.get_sheet_by_index(0)
    except Exception as exc:
        raise Invalid(f"not a readable .xlsx file: {exc}") from exc
    yield from sheet.iter_rows()
