"""What may run, without Anki: config checking, which messages may start an
action, and trust per note type and deck."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from addon import policy  # noqa: E402
from addon.policy import Origin, Settings  # noqa: E402

DEFAULTS = Settings("", 30.0, 100000, True)


def test_defaults_match_config_json():
    shipped = json.loads((Path(policy.__file__).parent / "config.json").read_text())
    assert shipped == policy.DEFAULT_CONFIG
    assert policy.check_config(None) == (DEFAULTS, [])
    assert policy.check_config(shipped) == (DEFAULTS, [])


def test_good_values_are_kept():
    conf = {"python": " /opt/venv/bin/python ", "timeout_seconds": 2.5, "max_output_bytes": 10, "ask_before_running": False}
    assert policy.check_config(conf) == (Settings("/opt/venv/bin/python", 2.5, 10, False), [])
    assert policy.check_config({"max_output_bytes": 10.0})[0].max_output_bytes == 10
    assert policy.check_config({"offer_after_import": False})[0].offer_after_import is False


@pytest.mark.parametrize(
    "key, value, shown",
    [
        ("timeout_seconds", math.inf, "Infinity"),
        ("timeout_seconds", -math.inf, "-Infinity"),
        ("timeout_seconds", math.nan, "NaN"),
        ("timeout_seconds", 0, "0"),
        ("timeout_seconds", -5, "-5"),
        ("timeout_seconds", 10**9, str(10**9)),
        ("timeout_seconds", "5", '"5"'),
        ("timeout_seconds", True, "true"),
        ("timeout_seconds", None, "null"),
        ("max_output_bytes", 0, "0"),
        ("max_output_bytes", 2.5, "2.5"),
        ("max_output_bytes", 10**12, str(10**12)),
        ("max_output_bytes", math.inf, "Infinity"),
        ("max_output_bytes", False, "false"),
        ("max_output_bytes", [1], "[1]"),
        ("python", 3, "3"),
        ("python", "/bin/py\nthon", '"/bin/py\\nthon"'),
        ("python", None, "null"),
        ("ask_before_running", "no", '"no"'),
        ("ask_before_running", 0, "0"),
        ("ask_before_running", None, "null"),
        ("offer_after_import", "yes", '"yes"'),
        ("offer_after_import", 1, "1"),
    ],
)
def test_a_bad_value_falls_back_to_its_default_with_a_message_naming_the_key(key, value, shown):
    conf = dict(policy.DEFAULT_CONFIG, ask_before_running=False)
    conf[key] = value
    settings, problems = policy.check_config(conf)
    expected = Settings("", 30.0, 100000, False)
    if key == "ask_before_running":
        expected = DEFAULTS
    assert settings == expected
    [problem] = problems
    assert problem.startswith(f'config "{key}": ') and f"(got {shown})" in problem and "using the default" in problem


def test_json_infinity_from_the_config_editor_is_caught():
    settings, problems = policy.check_config(json.loads('{"timeout_seconds": Infinity}'))
    assert settings.timeout_seconds == 30.0
    assert problems == [
        'config "timeout_seconds": must be a finite number of seconds above 0 and at most 86400 '
        "(got Infinity); using the default 30."
    ]


def test_unknown_keys_and_a_non_dict_config_are_reported_or_ignored():
    assert policy.check_config({"pyhton": "/x"})[1] == ['config "pyhton": unknown setting, ignored.']
    assert policy.check_config([1, 2]) == (DEFAULTS, [])


MESSAGES = [
    "deckbuild:run",
    "deckbuild:scratchpad",
    "deckbuild:run:import os",
    "deckbuild:run\nprint(1)",
    "deckbuild:run ",
    "deckbuild:exec",
    "deckbuild:",
]


@pytest.mark.parametrize("message", MESSAGES)
def test_no_message_from_a_card_starts_anything(message):
    assert policy.action_for_message(message, from_bottom_bar=False) is None
    assert policy.is_ours(message)


def test_the_bottom_bar_starts_exactly_the_two_actions():
    actions = {m: policy.action_for_message(m, from_bottom_bar=True) for m in MESSAGES}
    assert actions == dict.fromkeys(MESSAGES) | {"deckbuild:run": "run", "deckbuild:scratchpad": "scratchpad"}
    assert not policy.is_ours("ans") and policy.action_for_message("ans", True) is None


def origin(notetype_id=1738400004, deck_id=11):
    return Origin(notetype_id, deck_id, "Deck", 5, "c1")


def test_trust_is_per_note_type_and_deck():
    stored = policy.with_trust(None, origin())
    assert stored == ["1738400004:11"]
    trusted = policy.trusted_keys(stored)
    assert not policy.must_ask(DEFAULTS, trusted, origin())
    assert policy.must_ask(DEFAULTS, trusted, origin(deck_id=12))  # another deck still asks
    assert policy.must_ask(DEFAULTS, trusted, origin(notetype_id=99))  # another note type too
    assert policy.with_trust(stored, origin()) == stored  # no duplicates


def test_asking_off_runs_without_trust_and_damaged_trust_trusts_nothing():
    assert not policy.must_ask(Settings("", 30.0, 1, False), frozenset(), origin())
    for damaged in ("1738400004:11", {"1738400004:11": True}, 5, [5, None]):
        assert policy.must_ask(DEFAULTS, policy.trusted_keys(damaged), origin())
    assert policy.with_trust({"x": 1}, origin()) == ["1738400004:11"]


def test_trusting_a_new_deck_keeps_every_deck_trusted_before():
    stored = policy.with_trust(None, origin(deck_id=11))
    stored = policy.with_trust(stored, origin(deck_id=12))
    stored = policy.with_trust(stored + [7, None], origin(notetype_id=99))  # damaged entries are dropped
    assert stored == ["1738400004:11", "1738400004:12", "99:11"]
    trusted = policy.trusted_keys(stored)
    for trusted_origin in (origin(deck_id=11), origin(deck_id=12), origin(notetype_id=99)):
        assert not policy.must_ask(DEFAULTS, trusted, trusted_origin)
    assert policy.must_ask(DEFAULTS, trusted, origin(deck_id=13))


# Every checked value at, just inside and just outside its bounds: (key, value, accepted).
BOUNDARIES = [
    ("timeout_seconds", 0, False),
    ("timeout_seconds", -1e-9, False),
    ("timeout_seconds", 1e-9, True),
    ("timeout_seconds", 1, True),
    ("timeout_seconds", policy.MAX_TIMEOUT_SECONDS, True),
    ("timeout_seconds", policy.MAX_TIMEOUT_SECONDS - 1e-6, True),
    ("timeout_seconds", policy.MAX_TIMEOUT_SECONDS + 1e-6, False),
    ("timeout_seconds", policy.MAX_TIMEOUT_SECONDS + 1, False),
    ("max_output_bytes", 0, False),
    ("max_output_bytes", 1, True),
    ("max_output_bytes", 2, True),
    ("max_output_bytes", 1.0, True),  # a JSON 1.0 is a whole number
    ("max_output_bytes", 1.5, False),
    ("max_output_bytes", policy.MAX_OUTPUT_BYTES - 1, True),
    ("max_output_bytes", policy.MAX_OUTPUT_BYTES, True),
    ("max_output_bytes", policy.MAX_OUTPUT_BYTES + 1, False),
    ("python", "", True),
    ("python", "a b/python3", True),
    ("python", "python\n", False),
    ("python", "py\0thon", False),
    ("ask_before_running", False, True),
    ("ask_before_running", 0, False),
    ("offer_after_import", False, True),
    ("offer_after_import", 1, False),
]


@pytest.mark.parametrize("key, value, accepted", BOUNDARIES)
def test_config_bounds_are_exactly_the_documented_ones(key, value, accepted):
    settings, problems = policy.check_config({key: value})
    got = getattr(settings, key)
    if accepted:
        assert problems == []
        assert got == (value.strip() if isinstance(value, str) else value)
    else:
        assert len(problems) == 1 and problems[0].startswith(f'config "{key}": ')
        assert "using the default" in problems[0]
        assert got == policy.DEFAULT_CONFIG[key]


def test_each_fallback_message_says_what_the_value_must_be():
    """The words the user reads in the warning (Anki's config editor, and the card)."""
    wrong = {"python": 5, "timeout_seconds": 0, "max_output_bytes": 0, "ask_before_running": "no", "offer_after_import": "no"}
    _, problems = policy.check_config(wrong)
    assert problems == [
        'config "python": must be a path or command, as one line of text (got 5); using the default "".',
        'config "timeout_seconds": must be a finite number of seconds above 0 and at most 86400 (got 0); using the default 30.',
        'config "max_output_bytes": must be a whole number of bytes from 1 to 10000000 (got 0); using the default 100000.',
        'config "ask_before_running": must be true or false (got "no"); using the default true.',
        'config "offer_after_import": must be true or false (got "no"); using the default true.',
    ]
