"""What counts as a canary error: server-side failures by default, `errorRate.codes`
when the spec names them; counts per code in the numbers, the summary and trailers."""

from __future__ import annotations

from controller.adapters.promtext import combine, diff, parse
from controller.decide.analysis import Criteria, VersionWindow, judge_interval
from controller.decide.desired import desired_from_tree
from controller.decide.verdict_text import interval_detail
from controller.spec.analysis import SERVER_ERROR_CODES
from controller.spec.load import load_texts

SPEC = """\
apiVersion: rollouts/v1
kind: ModelRollout
metadata: {{name: hp2}}
spec:
  model: {{name: hp2}}
  stable: 1
  canary:
    version: 2
    steps: [{{weight: 10, hold: 1m}}]
    analysis:
      minRequests: 10
      checks:
        errorRate: {{max: 0.05{codes}}}
"""
FAST = ((0.1, 100.0), (float("inf"), 100.0))


def criteria(codes: str = "") -> Criteria:
    snapshot, problems = desired_from_tree(
        [("rollouts/hp2.yaml", SPEC.format(codes=codes))], "c1", "/models")
    assert snapshot is not None and not problems, problems
    found = snapshot.criteria("hp2")
    assert found is not None
    return found


def window(**codes: float) -> VersionWindow:
    return VersionWindow(100.0, sum(codes.values()), FAST, tuple(sorted(codes.items())))


def test_by_default_only_server_side_failures_count() -> None:
    assert criteria().error_codes == frozenset(SERVER_ERROR_CODES) == frozenset({
        "INTERNAL", "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED", "DATA_LOSS",
        "RESOURCE_EXHAUSTED"})
    # One client sending malformed input: 40% INVALID_ARGUMENT, no server failure.
    clients = judge_interval(criteria(), window(INVALID_ARGUMENT=40, NOT_FOUND=5),
                             window())
    assert clients.outcome == "pass", clients.reasons
    overloaded = judge_interval(criteria(), window(RESOURCE_EXHAUSTED=6, INVALID_ARGUMENT=40),
                                window())
    assert overloaded.outcome == "fail"
    assert overloaded.reasons == ("error rate 6.00% > max 5.00%",)


def test_the_spec_names_the_codes() -> None:
    strict = criteria(", codes: [INVALID_ARGUMENT, INTERNAL]")
    assert strict.error_codes == frozenset({"INVALID_ARGUMENT", "INTERNAL"})
    assert judge_interval(strict, window(INVALID_ARGUMENT=40), window()).outcome == "fail"
    assert judge_interval(strict, window(UNAVAILABLE=40), window()).outcome == "pass"


def test_an_unknown_code_is_an_error_with_a_suggestion() -> None:
    result = load_texts([("r.yaml", SPEC.format(codes=", codes: [INTERNAL, UNAVALABLE]"))])
    [problem] = result.problems
    assert problem.line == 13
    assert "did you mean 'UNAVAILABLE'?" in problem.message


def test_summary_and_numbers_give_the_counts_per_code() -> None:
    verdict = judge_interval(criteria(), window(INVALID_ARGUMENT=40, UNAVAILABLE=2),
                             window(INTERNAL=1))
    detail = interval_detail(verdict, 1000)
    assert detail["summary"].startswith(
        "pass at 10%: canary 100 req 2.00% err (INVALID_ARGUMENT 40 not counted, UNAVAILABLE 2)"
    ), detail["summary"]
    assert "stable 100 req 1.00% err (INTERNAL 1)" in detail["summary"]
    assert detail["canary"]["errorsByCode"] == {"INVALID_ARGUMENT": 40.0, "UNAVAILABLE": 2.0}
    assert detail["errorCodes"] == sorted(SERVER_ERROR_CODES)


def test_scrapes_keep_the_codes_through_diffs_and_sums() -> None:
    def text(internal: int, invalid: int) -> str:
        labels = 'model="m",version="2",label="canary"'
        return (f'rollouts_requests_total{{{labels},status="OK"}} 100.0\n'
                f'rollouts_requests_total{{{labels},status="INTERNAL"}} {internal}.0\n'
                f'rollouts_requests_total{{{labels},status="INVALID_ARGUMENT"}} {invalid}.0\n')

    delta = diff(parse(text(3, 10)), parse(text(1, 4)))
    both = combine([delta, delta]).windows[("m", 2)]
    assert delta.windows[("m", 2)].errors_by_code == (("INTERNAL", 2.0),
                                                      ("INVALID_ARGUMENT", 6.0))
    assert both.errors == 16.0
    assert both.errors_by_code == (("INTERNAL", 4.0), ("INVALID_ARGUMENT", 12.0))
    assert both.counted_errors(frozenset(SERVER_ERROR_CODES)) == 4.0
