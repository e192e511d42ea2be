"""Health data by sensitivity: which tickets carry it, what templates may name for whom,
and error text without the values it quotes. Plain functions, no fixtures."""

from __future__ import annotations

import pytest

from command import domain
from command.domain import privacy
from common.errors import Invalid
from common.sensitivity import is_sensitive, redact


@pytest.mark.parametrize(
    ("trigger", "facts", "description", "expected"),
    [
        ("event:CheckInMissed", {"tags": ["elderly"], "consecutive_days": 2}, None, False),
        ("event:CheckInMissed", {"tags": ["elderly", "pregnant"]}, None, True),
        ("event:CheckInMissed", {"tags": ["mental_health"]}, None, True),
        ("event:HealthAnomalyReported", {}, None, True),  # a health trigger, whatever it holds
        ("event:StockLow", {"item_name": "masks", "on_hand": 2}, None, False),
        ("event:RequestOverdue", {"category": "medicine"}, None, True),
        ("event:RequestOverdue", {"category": "groceries"}, None, False),
        ("event:ReplyNotUnderstood", {"text": "好难受"}, None, True),
        ("category:building_maintenance", {"category": "building_maintenance"}, "the lift is broken", True),
        ("category:health_concern", {"category": "health_concern"}, None, True),
        ("event:Unknown", {"temperature_c": 38.2}, None, True),
        ("event:Unknown", {"symptoms": []}, "  ", False),
    ],
)
def test_a_ticket_is_sensitive_by_what_it_holds_or_where_it_comes_from(trigger, facts, description, expected):
    assert domain.sensitive(trigger, facts, description) is expected


def test_what_a_template_may_name_depends_on_who_reads_it():
    assert privacy.action_facts("health", "event:HealthAnomalyReported") is None  # health staff: anything
    assert privacy.action_facts("police", "category:public_order") == {"building_id"}
    assert "phone" not in privacy.action_facts("grid", "event:CheckInMissed")
    assert "category" in privacy.title_facts("event:DemandSurge")  # an aggregate: a surge names no one
    assert "category" not in privacy.title_facts("event:RequestOverdue")
    privacy.check_template("Disinfect {building_id}", privacy.action_facts("property", "x"), "action")
    with pytest.raises(Invalid, match="names phone, temperature_c"):
        privacy.check_template("{temperature_c} {phone} {building_id}", frozenset({"building_id"}), "action")
    for bad in ("{a:>9}", "{a!s}", "{a.b}", "{a[0]}", "{0}", "{}", "{a"):
        with pytest.raises(Invalid):
            privacy.check_template(bad, None, "title")


def test_fill_shows_a_refused_fact_as_a_question_mark():
    facts = {"resident_id": "R1", "temperature_c": 38.6, "building_id": "B01"}
    assert domain.fill("{resident_id} {temperature_c} {building_id}", facts, frozenset({"building_id"})) == "? ? B01"
    assert domain.fill("{resident_id} {temperature_c}", facts) == "R1 38.6"  # health's own action


def test_common_sensitivity_and_redaction():
    assert not is_sensitive({"tags": "pregnant"})  # a string is not a list of tags
    assert is_sensitive({"fever": True}) and not is_sensitive({"fever": False})
    text = (
        "(IntegrityError) duplicate key\nDETAIL:  Key (id)=(13912345678) already exists.\n"
        "[SQL: INSERT INTO t (id) VALUES ($1)]\n[parameters: ('13912345678',)]\n"
        "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
    )
    hidden = redact(text)
    assert "13912345678" not in hidden and "INSERT INTO t" in hidden and "Background" in hidden
    assert "1e+308" not in redact("Input should be <= 43 [type=less_than_equal, input_value=1e+308, input_type=float]")
