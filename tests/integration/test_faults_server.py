"""Fault: a serving target SIGKILLed mid-canary and restarted on the same ports.

The controller notices the empty target within a poll, pushes config, labels
and split again; the intervals it could not measure are journalled as
skipped (never failed), their time is added to the hold, and the analysis
resumes until the canary is promoted.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.gitrepo import GitRepo
from controller.adapters.journal import GitNotes
from tests.conftest import ServerProcess
from tests.gitops import Person, spec
from tests.helpers import wait_for
from tests.integration.test_controller_canary import (
    canary_block,
    fleet,  # noqa: F401 - the fixture: two servers, models, a person's remote
    label_version,
    notes,
    running,
    split_of,
)
from tests.traffic import Traffic

pytestmark = pytest.mark.integration


def test_killed_server_gets_config_again_and_the_gap_is_skipped(
    fleet: dict[str, Any], tmp_path: Path, start_server: Any  # noqa: F811
) -> None:
    person: Person = fleet["person"]
    servers: list[ServerProcess] = fleet["servers"]
    traffic = Traffic([s.rest_url for s in servers]).start()
    controller = running(fleet, tmp_path)
    try:
        start = person.write(
            "rollouts/hp2.yaml",
            # A hold long enough that the canary is still running once the
            # restarted server is back, even on a busy machine.
            spec(stable=1, canary=2, canary_block=canary_block(hold="15s")),
            "canary hp2 v2",
        )
        reader = GitRepo(person.url, tmp_path / "reader")
        reader_notes = GitNotes(reader)

        def journal() -> list[str]:
            reader.sync()
            return reader_notes.notes(start)

        assert wait_for(lambda: any(" interval: pass" in n for n in journal()), 60, 0.3), (
            controller.status()
        )
        victim = servers[0]
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        killed_at = time.time()
        restarted = start_server(*fleet["flags"], port=victim.port, rest_port=victim.rest_port)
        # The controller re-pushes within one poll (0.5 s); the fleet is whole
        # again once the restarted server has loaded both versions, which on a
        # loaded 2-core machine takes seconds of TensorFlow work.
        assert wait_for(
            lambda: label_version(restarted, "canary") == 2
            and label_version(restarted, "stable") == 1
            and split_of(restarted) is not None,
            30,
            0.1,
        ), controller.status()
        assert wait_for(lambda: "rollouts: promote hp2 to 2" in person.remote_log(), 90, 0.3), (
            controller.status()
        )
    finally:
        controller.stop()
        traffic.stop()
    lines = journal()
    text = "\n".join(lines)
    assert " interval: skipped" in text or " interval: not measured" in text or any(
        '"outcome":"skipped"' in line for line in lines
    ), text
    assert '"outcome":"fail"' not in text and "Analysis failed" not in text
    # The analysis resumed: a measured pass after the restart led to the promotion.
    after = [line for line in lines if '"outcome":"pass"' in line and _at(line) > killed_at]
    assert after, text
    assert "verdict: Analysis passed" in notes(person)
    assert traffic.statuses[500] == 0
    # The unmeasured time did not count toward the 15 s hold: the verdict came
    # at least the span of the skipped intervals after the hold would have ended.
    skipped = [_at(line) for line in lines if '"outcome":"skipped"' in line]
    started = next(_at(line) for line in lines if '"kind":"started"' in line)
    verdict = next(_at(line) for line in lines if '"kind":"verdict"' in line)
    assert verdict >= started + 15 + (skipped[-1] - skipped[0]), text


def _at(line: str) -> float:
    import json

    return float(json.loads(line[line.find("{"):])["at"])
