"""Aave version classification: every (revision, views) pair production releases produce, and liars."""

from __future__ import annotations

import itertools

import pytest

from keeper.protocols.aave_v3.version import AaveVersion, DetectedVersion, Probes, classify, refusal

V = AaveVersion

# The views each release has, oldest first (aave-v3.6-notes.md §2): how many of the five probes answer.
VIEWS_3_0 = Probes()
VIEWS_3_1 = Probes(liquidation_grace_period=True)
VIEWS_3_2 = Probes(liquidation_grace_period=True, emode_collateral_bitmap=True)
VIEWS_3_3 = Probes(True, True, reserve_deficit=True)
VIEWS_3_4 = Probes(True, True, True, rate_strategy_immutable=True)
VIEWS_3_6 = Probes(True, True, True, True, emode_ltvzero_bitmap=True)

RELEASES = [
    (1, VIEWS_3_0, V.V3_0),
    (2, VIEWS_3_0, V.V3_0),
    (3, VIEWS_3_0, V.V3_0),
    (4, VIEWS_3_1, V.V3_1),
    (5, VIEWS_3_2, V.V3_2),
    (6, VIEWS_3_2, V.V3_2),
    (7, VIEWS_3_3, V.V3_3),
    (8, VIEWS_3_4, V.V3_4),
    (9, VIEWS_3_4, V.V3_5),
    (10, VIEWS_3_6, V.V3_6),
    (11, VIEWS_3_6, V.V3_7_PLUS),
    (12, VIEWS_3_6, V.V3_7_PLUS),
]


@pytest.mark.parametrize(("revision", "probes", "expected"), RELEASES)
def test_each_release_is_recognised(revision: int, probes: Probes, expected: AaveVersion) -> None:
    assert classify(revision, probes) is expected


CONTRADICTIONS = [
    (None, VIEWS_3_0),  # POOL_REVISION reverted: not an Aave V3 pool we can place
    (None, VIEWS_3_6),
    (0, VIEWS_3_0),
    (4, VIEWS_3_0),  # a 3.1 revision without a single 3.1 view
    (10, VIEWS_3_0),
    (1, VIEWS_3_1),  # 3.1 views on a 3.0 revision
    (3, VIEWS_3_6),
    (4, VIEWS_3_2),  # views one release ahead of the revision
    (7, VIEWS_3_4),
    (9, VIEWS_3_6),
    (10, VIEWS_3_4),  # the 3.6 revision without the 3.6 view
    (8, VIEWS_3_3),  # the 3.4 revision without the 3.4 view
    (11, VIEWS_3_3),  # "3.7" that lacks views 3.4 added
    (11, VIEWS_3_0),
    (10, Probes(emode_ltvzero_bitmap=True)),  # a later view without the older ones
    (10, Probes(True, True, True, False, True)),
    (7, Probes(True, False, True)),
]


@pytest.mark.parametrize(("revision", "probes"), CONTRADICTIONS)
def test_contradictory_answers_are_unknown(revision: int | None, probes: Probes) -> None:
    assert classify(revision, probes) is V.UNKNOWN


def test_every_probe_combination_classifies_and_only_release_shapes_are_known() -> None:
    """All 32 view combinations x revisions 0-13: a known version only for the shapes releases have."""
    shapes = {VIEWS_3_0, VIEWS_3_1, VIEWS_3_2, VIEWS_3_3, VIEWS_3_4, VIEWS_3_6}
    for bits in itertools.product((False, True), repeat=5):
        probes = Probes(*bits)
        for revision in range(14):
            version = classify(revision, probes)
            assert version is V.UNKNOWN or probes in shapes, (revision, probes)
            assert (version is V.V3_0) == (probes == VIEWS_3_0 and 1 <= revision <= 3), (revision, probes)


def test_v3_0_and_v3_6_are_supported_and_the_refusal_is_one_line_naming_what_was_found() -> None:
    assert DetectedVersion.of(2, VIEWS_3_0).supported and DetectedVersion.of(10, VIEWS_3_6).supported
    found = DetectedVersion.of(9, VIEWS_3_4)
    assert not found.supported and str(found) == "Aave v3.5 (POOL_REVISION 9)"
    line = refusal(
        "protocols.aave.pool_addresses_provider", found, "protocols.aave.allow_unsupported_version"
    )
    assert line == (
        "protocols.aave.pool_addresses_provider: Aave v3.5 (POOL_REVISION 9) is not supported yet; "
        "supported: v3.0.x, v3.6 (set protocols.aave.allow_unsupported_version = true to run anyway: "
        "health and liquidations will be computed with v3.0.x rules and can be wrong)"
    )
    v3_4 = refusal("k", DetectedVersion.of(8, VIEWS_3_4), "o")  # no v3.4 maths at all: the 3.0 rules
    assert v3_4.endswith("health and liquidations will be computed with v3.0.x rules and can be wrong)")
    assert str(DetectedVersion.of(None, VIEWS_3_0)) == "Aave of an unknown version (POOL_REVISION absent)"
    assert str(DetectedVersion.of(11, VIEWS_3_6)) == "Aave v3.7+ (POOL_REVISION 11)"
