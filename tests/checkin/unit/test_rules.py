"""The check-in rules, with no fixtures: values in, decisions out."""

from datetime import date

import pytest

from checkin import domain
from common.errors import Forbidden, Invalid, NotFound

TODAY = date(2026, 11, 21)


@pytest.mark.parametrize(
    ("temperature", "symptoms", "fever", "anomaly"),
    [
        (36.5, [], False, False),
        (37.2, [], False, False),
        (37.3, [], True, True),  # the threshold itself is a fever
        (36.6, ["cough"], False, True),
        (39.0, ["Sore Throat", "none"], True, True),
    ],
)
def test_assess_fever_and_symptoms(temperature, symptoms, fever, anomaly):
    result = domain.assess(temperature, symptoms)
    assert (result.fever, result.anomaly) == (fever, anomaly)


@pytest.mark.parametrize("temperature", [33.9, 43.1, 0, 100])
def test_implausible_temperature_is_a_measuring_error(temperature):
    with pytest.raises(Invalid, match="measuring error"):
        domain.assess(temperature, [])


def test_boundaries_of_plausible_range_are_accepted():
    assert not domain.assess(34.0, []).fever
    assert domain.assess(43.0, []).fever


def test_unknown_symptom_is_refused_with_the_known_ones():
    with pytest.raises(Invalid, match="unknown symptom 'itchy'.*cough"):
        domain.assess(36.5, ["itchy"])


def test_symptoms_are_normalised_and_deduplicated():
    assert domain.normalise_symptoms(["Cough", "cough", "shortness-of-breath"]) == ("cough", "shortness_of_breath")


def test_check_date_defaults_to_today_and_refuses_future_and_old():
    assert domain.check_date(None, TODAY) == TODAY
    with pytest.raises(Invalid, match="future"):
        domain.check_date(date(2026, 11, 22), TODAY)
    with pytest.raises(Invalid, match="days ago"):
        domain.check_date(date(2026, 11, 1), TODAY)


def test_residents_check_in_only_for_themselves():
    me = domain.Actor("R-1", "resident")
    assert domain.channel_for(me, "R-1", "B1", "G1", None) == "self"
    with pytest.raises(NotFound, match="no resident 'R-2' among those you may act for"):
        domain.channel_for(me, "R-2", "B1", "G1", None)


def test_building_leads_check_in_for_their_building_only():
    lead = domain.Actor("L-1", "building_lead", building_ids=("B1",))
    assert domain.channel_for(lead, "R-2", "B1", "G1", None) == "building_lead"
    with pytest.raises(NotFound) as refused:  # as if R-3 did not exist: no building named
        domain.channel_for(lead, "R-3", "B2", "G1", None)
    assert "B2" not in refused.value.message and "B1" not in refused.value.message


def test_grid_workers_record_hotline_check_ins_in_their_grids():
    worker = domain.Actor("W-1", "grid_worker", grid_ids=("G1",))
    assert domain.channel_for(worker, "R-2", "B1", "G1", "voice_call") == "voice_call"
    with pytest.raises(NotFound) as refused:
        domain.channel_for(worker, "R-2", "B1", "G9", None)
    assert "G9" not in refused.value.message


def test_volunteers_cannot_submit_check_ins():
    with pytest.raises(Forbidden):
        domain.channel_for(domain.Actor("V-1", "volunteer"), "R-2", "B1", "G1", None)


def test_followup_order_anomaly_then_misses_then_tags():
    people = {
        "missed-3": domain.followup_rank(False, 3, []),
        "fever": domain.followup_rank(True, 0, []),
        "missed-1-pregnant": domain.followup_rank(False, 1, ["pregnant"]),
        "missed-1": domain.followup_rank(False, 1, []),
    }
    assert sorted(people, key=people.get) == ["fever", "missed-3", "missed-1-pregnant", "missed-1"]


def test_lagging_buildings_are_those_below_the_rate():
    assert domain.lagging({"B1": (9, 10), "B2": (8, 10), "B3": (0, 0)}, 0.9) == {"B2": 0.8}


def test_draft_resident_validates_and_has_a_random_id_and_a_stable_home():
    fields = dict(
        name="王芳", phone="13800000000", community_id="C1", grid_id="G1", building_id="B1", unit="1", room="101"
    )
    a = domain.draft_resident(**fields, tags="老人、独居")
    b = domain.draft_resident(**fields)
    assert a.tags == ("elderly", "living_alone")
    assert a.resident_id != b.resident_id and a.resident_id.startswith("R-") and len(a.resident_id) == 18
    assert a.home == b.home  # the same person at the same home: one resident, whatever the id
    assert domain.draft_resident(**{**fields, "room": "102"}).home != a.home


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, "missing name"),
        ({"phone": "abc"}, "not a phone number"),
        ({"lat": "north"}, "not a number"),
        ({"lat": 95}, "outside"),
        ({"tags": "vip"}, "unknown tag"),
    ],
)
def test_draft_resident_says_what_is_wrong(change, message):
    fields = dict(
        name="王芳", phone="13800000000", community_id="C1", grid_id="G1", building_id="B1", unit="1", room="101"
    )
    with pytest.raises(Invalid, match=message):
        domain.draft_resident(**{**fields, **change})


def test_parse_address():
    assert domain.parse_address("B03-2-401") == ("B03", "2", "401")
    assert domain.parse_address(" 7 / 1 / 1202 ") == ("7", "1", "1202")
    with pytest.raises(Invalid):
        domain.parse_address("401")


@pytest.mark.parametrize("key", ["3f2b6c1e-8a4d-4d8e-9f1a-2b3c4d5e6f70", "k-1", "x" * 100])
def test_an_idempotency_key_is_printable_ascii_without_spaces(key):
    assert domain.check_idempotency_key(key) == key


@pytest.mark.parametrize("key", ["", "two words", "x" * 101, "钥匙", "tab\there"])
def test_other_idempotency_keys_are_refused(key):
    with pytest.raises(Invalid, match="Idempotency-Key"):
        domain.check_idempotency_key(key)


def followup(resident_id, anomaly, days_missed, tags, address):
    return {"resident_id": resident_id, "name": "n", "phone": "p", "grid_id": "G1", "building_id": "B01",
            "address": address, "tags": tags, "reasons": ["fever 38.5°C", "cough"] if anomaly else [],
            "anomaly": anomaly, "days_missed": days_missed, "last_temperature_c": 38.5,
            "last_checkin_date": None}  # fmt: skip


def test_a_building_lead_sees_needs_attention_instead_of_health_facts_in_an_order_tags_do_not_set():
    items = [followup("R-1", False, 1, ["pregnant"], "B01-1-101"), followup("R-2", False, 2, [], "B01-1-102"),
             followup("R-3", True, 0, ["chronic"], "B01-1-103"), followup("R-4", False, 1, [], "B01-1-100")]  # fmt: skip
    shown = domain.for_building_lead(items)
    assert [i["resident_id"] for i in shown] == ["R-3", "R-2", "R-4", "R-1"]
    assert shown[0]["reasons"] == ["needs attention"] and shown[1]["reasons"] == ["missed check-in (2 days)"]
    assert all(set(i) == {*domain.LEAD_FOLLOWUP_FIELDS, "needs_attention", "reasons"} for i in shown)
