"""An answer's sources are the passages it cites by number, never every passage retrieved."""

from __future__ import annotations

from core.citations import cited

SOURCES = ("a.md › One", "a.md › Two", "b.pdf, p. 3", "a.md › Two")


def test_only_the_cited_passages_are_sources_in_order_of_first_citation() -> None:
    answer = "Snapshots are kept ninety days [3], taken six-hourly [2; 3] and checked [2,4]."
    assert cited(SOURCES, answer) == ["b.pdf, p. 3", "a.md › Two"]


def test_an_answer_citing_nothing_has_no_sources() -> None:
    assert cited(SOURCES, "I could not find that in your documents.") == []


def test_numbers_outside_the_passages_are_not_citations() -> None:
    assert cited(SOURCES, "See [5], [0] and `items[9]`; [1.5] is no marker.") == []


def test_adjacent_markers_each_count() -> None:
    assert cited(SOURCES, "Both [1][3].") == ["a.md › One", "b.pdf, p. 3"]
