"""Fuzzing: no rollout spec text, however broken, raises out of loading or `validate`.

Random text, random nested structures dumped as YAML, and mutations of the
example specs go through `load_texts`, `desired_from_tree` (the controller's
path) and `rollouts validate`; the outcome is documents or problems, and the
CLI's exit code is 0, 1 or 2, never a traceback. Example counts are kept small
so the module runs in a few seconds.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.cli.main import main as cli_main
from controller.decide.desired import desired_from_tree
from controller.spec.load import load_texts

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "rollouts").glob("*.yaml"))
EXAMPLE_TEXTS = [p.read_text() for p in EXAMPLES]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)
keys = st.one_of(
    st.sampled_from(["apiVersion", "kind", "metadata", "spec", "name", "model", "stable",
                     "canary", "version", "steps", "weight", "hold", "analysis", "interval",
                     "split", "hashKey", "checks", "errorRate", "max", "transition"]),
    st.text(max_size=8),
)
nested = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=25,
)


def spec_like(body: Any) -> dict[str, Any]:
    return {"apiVersion": "rollouts/v1", "kind": "ModelRollout", "metadata": {"name": "m"},
            "spec": body}


def load_never_raises(text: str) -> None:
    load_texts([("rollouts/fuzz.yaml", text)])
    snapshot, problems = desired_from_tree([("rollouts/fuzz.yaml", text)], "c0ffee", "/models")
    assert snapshot is not None or problems


def validate_exit_code(text: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(["validate", str(path)])
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return code


@FAST
@given(st.text(max_size=400))
def test_random_text_loads_to_problems_not_exceptions(text: str) -> None:
    load_never_raises(text)


@FAST
@given(nested)
def test_random_structures_as_yaml(body: Any) -> None:
    for document in (body, spec_like(body)):
        load_never_raises(yaml.safe_dump(document, allow_unicode=True))


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(EXAMPLE_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        at = draw(st.integers(0, len(text) - 1))
        kind = draw(st.sampled_from(["delete", "insert", "duplicate-line", "swap-value"]))
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif kind == "insert":
            text = text[:at] + draw(st.text(alphabet=":-{}[]#&*!|>'\"\t\n 0123456789a",
                                            max_size=10)) + text[at:]
        elif kind == "duplicate-line":
            lines = text.splitlines(keepends=True)
            line = draw(st.integers(0, len(lines) - 1))
            text = "".join(lines[: line + 1] + lines[line:])
        else:
            replacement = draw(st.sampled_from(["-1", "0", "1e309", "null", "[]", "{}", "~",
                                                "'x'", "99999999999999999999", "1h1h", ".nan"]))
            end = text.find("\n", at)
            colon = text.rfind(": ", 0, end if end >= 0 else len(text))
            if colon >= 0:
                text = text[: colon + 2] + replacement + (text[end:] if end >= 0 else "")
    return text


@FAST
@given(mutated_example())
def test_mutated_examples_load_to_documents_or_problems(text: str) -> None:
    load_never_raises(text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated_example(), st.text(max_size=200),
                 nested.map(lambda b: yaml.safe_dump(spec_like(b)))))
def test_validate_cli_exits_0_1_or_2(text: str) -> None:
    assert validate_exit_code(text) in (0, 1, 2)


def test_examples_still_validate() -> None:
    # The unmutated examples are the control: they load clean, so the
    # mutations above are what produce the problems.
    for text in EXAMPLE_TEXTS:
        assert not load_texts([("rollouts/x.yaml", text)]).problems
