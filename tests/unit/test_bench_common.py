"""benchmarks.common: percentiles, summaries, markdown tables, CPU model, result files,
the command line and the exit code every benchmark ends with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.common import (
    Result,
    Table,
    argument_parser,
    finish,
    format_cell,
    markdown_table,
    parse_cpu_model,
    percentile,
    summarize,
)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0], 0, 1.0),
        ([1.0, 2.0, 3.0], 100, 3.0),
        ([3.0, 1.0, 2.0], 50, 2.0),  # unsorted input
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),  # even count: mean of the middle two
        ([float(i) for i in range(1, 11)], 90, 9.1),  # numpy.percentile(1..10, 90)
        ([0.0, 10.0], 25, 2.5),
    ],
)
def test_percentile_interpolates_linearly_between_ranks(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 100.5)])
def test_percentile_rejects_bad_input(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


def test_summarize_reports_every_statistic() -> None:
    stats = summarize([4.0, 1.0, 3.0, 2.0])
    assert stats["n"] == 4 and stats["min"] == 1.0 and stats["max"] == 4.0
    assert stats["p50"] == pytest.approx(2.5) and stats["mean"] == pytest.approx(2.5)
    assert stats["p90"] == pytest.approx(3.7)
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.parametrize(
    ("cell", "text"),
    [(None, "-"), (True, "yes"), (False, "no"), (1.23456, "1.235"), (7, "7"),
     ("a|b", "a\\|b"), ("two\nlines", "two lines")],
)
def test_format_cell(cell: str | int | float | None, text: str) -> None:
    assert format_cell(cell) == text


def test_markdown_table_aligns_numeric_columns_right() -> None:
    text = markdown_table(
        ["path", "N", "p50 s", "met"],
        [["poll", 10, 0.8, True], ["webhook", 10, None, False]],
    )
    assert text.splitlines() == [
        "| path | N | p50 s | met |",
        "|---|---:|---:|---|",
        "| poll | 10 | 0.800 | yes |",
        "| webhook | 10 | - | no |",
    ]


def test_markdown_table_refuses_ragged_rows() -> None:
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [[1]])
    table = Table("t", ["a", "b"])
    with pytest.raises(ValueError):
        table.add(1, 2, 3)


def test_a_column_of_blanks_only_is_not_numeric() -> None:
    assert markdown_table(["a"], [[None]]).splitlines()[1] == "|---|"


@pytest.mark.parametrize(
    ("cpuinfo", "model"),
    [
        ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n"
         "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n",
         "Intel(R) Xeon(R) CPU @ 2.20GHz"),
        ("processor\t: 0\nBogoMIPS\t: 50.00\nHardware\t: BCM2835\n", "BCM2835"),
        ("processor\t: 0\n", "unknown"),
    ],
)
def test_parse_cpu_model(cpuinfo: str, model: str) -> None:
    assert parse_cpu_model(cpuinfo) == model


def test_result_writes_markdown_and_json_with_machine_and_date(tmp_path: Path) -> None:
    result = Result("bench_x", "X latency", date="2026-01-02 03:04:05 UTC",
                    machine={"nproc": 2, "cpu_model": "Test CPU", "python": "3.11.7",
                             "platform": "Linux"})
    result.params = {"samples": 3}
    table = result.table("Pushed -> applied", ["path", "p50 s"])
    table.add("poll", 0.5)
    table.notes.append("a note")
    result.data["raw"] = [0.4, 0.5, 0.6]
    markdown, document = result.write(tmp_path)
    assert (markdown.name, document.name) == ("bench_x.md", "bench_x.json")
    text = markdown.read_text()
    assert "## X latency" in text and "### Pushed -> applied" in text and "a note" in text
    assert "2026-01-02 03:04:05 UTC on 2 CPU(s), Test CPU, Python 3.11.7" in text
    assert "| poll | 0.500 |" in text and "samples=3" in text
    loaded = json.loads(document.read_text())
    assert loaded["machine"]["cpu_model"] == "Test CPU"
    assert loaded["tables"][0]["rows"] == [["poll", 0.5]]
    assert loaded["data"]["raw"] == [0.4, 0.5, 0.6] and loaded["date"].startswith("2026-01-02")


def test_result_fills_in_this_machine_when_not_given(tmp_path: Path) -> None:
    result = Result("bench_y", "Y")
    result.write(tmp_path)
    machine = json.loads((tmp_path / "bench_y.json").read_text())["machine"]
    assert machine["nproc"] >= 1 and machine["python"].count(".") == 2


@pytest.mark.parametrize(("met", "code"), [(True, 0), (False, 1)])
def test_finish_writes_prints_and_exits_with_whether_goals_were_met(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], met: bool, code: int
) -> None:
    result = Result("bench_z", "Z", machine={"nproc": 1})
    assert finish(result, met, tmp_path) == code
    out = capsys.readouterr().out
    assert "## Z" in out
    assert f"written: {tmp_path / 'bench_z.md'} and {tmp_path / 'bench_z.json'}" in out
    assert (tmp_path / "bench_z.md").read_text() == result.to_markdown()


def test_argument_parser_is_described_by_the_docstrings_first_line() -> None:
    parser = argument_parser("Benchmark X (goal: fast).\n\nMore words.")
    assert parser.description == "Benchmark X (goal: fast)."
