"""The check-in rules, as plain functions of values: no database, no Kafka, no clock.

Fever is a temperature of 37.3 °C or more; a reading outside 34.0–43.0 °C is a measuring
error and is refused, not stored as a fever (DESIGN.md §4).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta

from common.errors import Forbidden, Invalid, NotFound
from common.vocabulary import CHANNELS, STAFF_ROLES, TAGS, Role

FEVER_C = 37.3
MIN_PLAUSIBLE_C = 34.0
MAX_PLAUSIBLE_C = 43.0
LATEST_BACKDATE_DAYS = 7

# What communities write in their spreadsheets, mapped to our tags.
TAG_ALIASES = {
    "老人": "elderly", "老年": "elderly", "高龄": "elderly",
    "独居": "living_alone", "空巢": "living_alone",
    "慢病": "chronic", "慢性病": "chronic",
    "孕妇": "pregnant", "孕产妇": "pregnant",
    "残疾": "disabled", "残障": "disabled",
    "心理": "mental_health", "精神": "mental_health",
}  # fmt: skip
SYMPTOMS = (
    "cough",
    "sore_throat",
    "shortness_of_breath",
    "loss_of_smell_or_taste",
    "fatigue",
    "muscle_pain",
    "headache",
    "chills",
    "runny_nose",
    "diarrhea",
    "nausea",
)
# How much a tag raises a resident in the follow-up list (higher first).
TAG_URGENCY = {"pregnant": 3, "chronic": 3, "living_alone": 2, "elderly": 2, "disabled": 2, "mental_health": 1}


@dataclass(frozen=True)
class Assessment:
    fever: bool
    symptoms: tuple[str, ...]

    @property
    def anomaly(self) -> bool:
        return self.fever or bool(self.symptoms)


def assess(temperature_c: float, symptoms: list[str]) -> Assessment:
    """Validate a reading and decide whether it is a health anomaly."""
    if not MIN_PLAUSIBLE_C <= temperature_c <= MAX_PLAUSIBLE_C:
        raise Invalid(
            f"temperature {temperature_c} °C is outside {MIN_PLAUSIBLE_C}–{MAX_PLAUSIBLE_C} °C: "
            "a measuring error, please measure again"
        )
    return Assessment(fever=temperature_c >= FEVER_C, symptoms=normalise_symptoms(symptoms))


def normalise_symptoms(symptoms: list[str]) -> tuple[str, ...]:
    cleaned = []
    for raw in symptoms:
        symptom = raw.strip().lower().replace(" ", "_").replace("-", "_")
        if symptom in ("", "none"):
            continue
        if symptom not in SYMPTOMS:
            raise Invalid(f"unknown symptom {raw!r}; known: {', '.join(SYMPTOMS)}")
        if symptom not in cleaned:
            cleaned.append(symptom)
    return tuple(cleaned)


def check_date(requested: date | None, today: date) -> date:
    """The local date a check-in is for: today unless given; never future, at most a week back."""
    day = requested or today
    if day > today:
        raise Invalid(f"date {day} is in the future (today is {today})")
    if day < today - timedelta(days=LATEST_BACKDATE_DAYS):
        raise Invalid(f"date {day} is more than {LATEST_BACKDATE_DAYS} days ago")
    return day


IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,100}")  # printable ASCII, no spaces: a UUID or the client's own token


def check_idempotency_key(key: str) -> str:
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise Invalid("Idempotency-Key must be 1 to 100 printable ASCII characters without spaces, e.g. a UUID")
    return key


def check_sweep_date(day: date, today: date) -> date:
    if day > today:
        raise Invalid(f"cannot sweep {day}: it has not happened yet (today is {today})")
    return day


@dataclass(frozen=True)
class Actor:
    """Who is acting, as the rules need to know it (built from the token)."""

    sub: str
    role: Role
    grid_ids: tuple[str, ...] = ()
    building_ids: tuple[str, ...] = ()


def unknown_resident(*resident_ids: str) -> NotFound:
    """The one answer for a resident who does not exist and for one the caller may not act
    for: telling the two apart (or naming a building) would say where a person lives."""
    return NotFound(f"no resident {', '.join(repr(r) for r in resident_ids[:10])} among those you may act for")


def may_act_for(actor: Actor, resident_id: str, building_id: str, grid_id: str) -> bool:
    """Residents for themselves; building leads for their buildings; grid workers for their
    grids; staff for anyone."""
    if actor.role == "resident":
        return actor.sub == resident_id
    if actor.role == "building_lead":
        return building_id in actor.building_ids
    if actor.role == "grid_worker":
        return grid_id in actor.grid_ids
    return actor.role in STAFF_ROLES


_CHANNEL_OF_ROLE = {"resident": "self", "building_lead": "building_lead", "grid_worker": "hotline"}


def channel_for(actor: Actor, resident_id: str, building_id: str, grid_id: str, requested: str | None) -> str:
    """Who may check in for whom (`may_act_for`), and through which channel: grid workers
    and staff by hotline and voice calls."""
    if actor.role not in _CHANNEL_OF_ROLE and actor.role not in STAFF_ROLES:
        raise Forbidden(f"role {actor.role!r} cannot submit check-ins")
    if not may_act_for(actor, resident_id, building_id, grid_id):
        raise unknown_resident(resident_id)
    default = _CHANNEL_OF_ROLE.get(actor.role, "hotline")
    channel = requested or default
    if channel not in CHANNELS:
        raise Invalid(f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}")
    return channel


def followup_rank(anomaly: bool, days_missed: int, tags: list[str]) -> tuple[int, int, int]:
    """Sort key, most urgent first: a fever or symptom, then most consecutive misses, then tags."""
    return (0 if anomaly else 1, -days_missed, -sum(TAG_URGENCY.get(t, 0) for t in tags))


LEAD_FOLLOWUP_FIELDS = ("resident_id", "name", "phone", "building_id", "address", "days_missed", "last_checkin_date")


def for_building_lead(followups: list[dict]) -> list[dict]:
    """A follow-up list as a building lead may see it: health facts (temperature, symptoms,
    tags) become one `needs_attention` flag, and the order no longer follows the tags."""
    shown = [
        {
            **{name: item[name] for name in LEAD_FOLLOWUP_FIELDS},
            "needs_attention": item["anomaly"],
            "reasons": ["needs attention"] * item["anomaly"]
            + [f"missed check-in ({item['days_missed']} day{'s' if item['days_missed'] > 1 else ''})"]
            * bool(item["days_missed"]),
        }
        for item in followups
    ]
    return sorted(shown, key=lambda i: (not i["needs_attention"], -i["days_missed"], i["address"]))


def completion_rate(done: int, expected: int) -> float:
    return round(done / expected, 4) if expected else 1.0


def lagging(completion: dict[str, tuple[int, int]], min_rate: float) -> dict[str, float]:
    """Buildings whose (sampled, expected) falls below the rate, with their rate."""
    rates = {b: completion_rate(done, expected) for b, (done, expected) in completion.items()}
    return {b: r for b, r in rates.items() if r < min_rate}


# -- residents ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ResidentDraft:
    name: str
    phone: str
    community_id: str
    grid_id: str
    building_id: str
    unit: str
    room: str
    tags: tuple[str, ...] = ()
    lat: float | None = None
    lon: float | None = None
    registered_on: date | None = None  # from the community's register; None: now
    household: str | None = None  # the register's household, when it is not the room (see household_of)
    resident_id: str = field(default_factory=lambda: new_resident_id(), compare=False)

    @property
    def household_id(self) -> str:
        return household_of(self.building_id, self.unit, self.room, self.household)

    @property
    def home(self) -> tuple[str, str, str, str, str]:
        """Who and where: one resident per home and name, so importing a file twice is harmless."""
        return (self.community_id, self.building_id, self.unit, self.room, self.name)


def new_resident_id() -> str:
    """Random: an id says nothing of who or where the resident is and cannot be derived
    from a name and address. Residents registered earlier keep the ids they have."""
    return "R-" + secrets.token_hex(8)


_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{5,19}$")
_ADDRESS = re.compile(r"^\s*([^\-\s/]+)\s*[-/]\s*([^\-\s/]+)\s*[-/]\s*([^\-\s/]+)\s*$")


def parse_tags(raw: str | list[str] | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    parts = raw if isinstance(raw, list) else re.split(r"[,，、;；\s]+", str(raw))
    tags: list[str] = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        tag = TAG_ALIASES.get(part, part.lower())
        if tag not in TAGS:
            raise Invalid(f"unknown tag {part!r}; known: {', '.join(TAGS)}")
        if tag not in tags:
            tags.append(tag)
    return tuple(tags)


def parse_address(address: str) -> tuple[str, str, str]:
    """ "B03-2-401" (building-unit-room) -> ("B03", "2", "401")."""
    match = _ADDRESS.match(address or "")
    if not match:
        raise Invalid(f"address {address!r} is not building-unit-room, e.g. B03-2-401")
    return match.group(1), match.group(2), match.group(3)


def draft_resident(
    *,
    name: str | None,
    phone: str | None,
    community_id: str | None,
    grid_id: str | None,
    building_id: str | None,
    unit: str | None,
    room: str | None,
    tags: str | list[str] | None = None,
    lat: float | str | None = None,
    lon: float | str | None = None,
    registered_on: date | str | None = None,
    today: date | None = None,
    household: str | None = None,
) -> ResidentDraft:
    """Validate what a form or a spreadsheet row says about a resident."""
    missing = [
        label
        for label, value in (
            ("name", name),
            ("phone", phone),
            ("community_id", community_id),
            ("grid_id", grid_id),
            ("building_id", building_id),
            ("unit", unit),
            ("room", room),
        )
        if value is None or str(value).strip() == ""
    ]
    if missing:
        raise Invalid(f"missing {', '.join(missing)}")
    phone = str(phone).strip()
    if not _PHONE.match(phone):
        raise Invalid(f"phone {phone!r} is not a phone number")
    return ResidentDraft(
        name=str(name).strip(),
        phone=phone,
        community_id=str(community_id).strip(),
        grid_id=str(grid_id).strip(),
        building_id=str(building_id).strip(),
        unit=str(unit).strip(),
        room=str(room).strip(),
        tags=parse_tags(tags),
        lat=_coordinate(lat, "lat", -90, 90),
        lon=_coordinate(lon, "lon", -180, 180),
        registered_on=_registration_date(registered_on, today),
        household=check_household(household),
    )


HOUSEHOLD_PREFIX = "H."
_HOUSEHOLD = re.compile(r"^[\w\-]{1,40}$")  # letters (any script), digits, - and _: no dot, slash or space
_UNIT_ROOM = re.compile(r"^([^\-]+)-([^\-]+)$")


def check_household(label: str | None) -> str | None:
    if label is None or str(label).strip() == "":
        return None
    label = str(label).strip()
    if not _HOUSEHOLD.match(label):
        raise Invalid(f"household {label!r} must be letters, digits, - or _ (at most 40), e.g. 2-401 or wang")
    return label


def household_of(building_id: str, unit: str, room: str, label: str | None = None) -> str:
    """A resident's household id. Everyone at one building-unit-room is one household
    (`H.<building>.<unit>.<room>`) unless the register says otherwise: a label `unit-room`
    joins that room's household (a family across two flats), any other label is a household
    of its own in the building (`H.<building>.<label>`: two households sharing a flat)."""
    if label:
        if (m := _UNIT_ROOM.match(label)) is not None:
            unit, room = m.groups()
        else:
            return f"{HOUSEHOLD_PREFIX}{building_id}.{label}"
    return f"{HOUSEHOLD_PREFIX}{building_id}.{unit}.{room}"


def _registration_date(value: date | str | None, today: date | None) -> date | None:
    if value is None or str(value).strip() == "":
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip()[:10].replace("/", "-"))
        except ValueError as exc:
            raise Invalid(f"registered_on {value!r} is not a date like 2026-11-20") from exc
    if today is not None and value > today:
        raise Invalid(f"registered_on {value} is in the future")
    return value


def _coordinate(value: float | str | None, label: str, low: float, high: float) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise Invalid(f"{label} {value!r} is not a number") from exc
    if not low <= number <= high:
        raise Invalid(f"{label} {number} is outside {low}..{high}")
    return number


MAX_REJECTS_LISTED = 1000  # a report names this many rejected rows at most, and counts them all


@dataclass
class ImportReport:
    """What an import did, row by row (row numbers as the spreadsheet shows them)."""

    total: int = 0
    imported: int = 0
    unchanged: int = 0
    rejected: list[dict] = field(default_factory=list)

    rejected_total: int = 0  # every rejected row; `rejected` lists the first MAX_REJECTS_LISTED

    def reject(self, row: int, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < MAX_REJECTS_LISTED:
            self.rejected.append({"row": row, "reason": reason[:300]})
