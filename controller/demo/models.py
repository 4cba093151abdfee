"""The demo's model: four versions of a tiny TensorFlow regression, exported as SavedModels.

`y = 0.5 * x + offset` behind a `serving_default` predict signature (input `x`,
output `y`, float32 vectors), the shape of TF Serving's half_plus_two example:

- v1 (offset 2) and v2 are healthy: v2 is a retrain whose answers differ from
  v1's by `RETRAIN_DRIFT` (well inside the demo's per-element tolerance), so
  shadow scoring finds 0 % of its answers differing;
- v3 is faulty: an in-graph assertion rejects inputs at or above `FAULTY_FROM`
  (part of the demo's traffic, so its error rate climbs) and every call sleeps
  `FAULTY_DELAY_S` inside the graph (so its latency climbs too);
- v4 is wrong: fast, status OK, and every answer `WRONG_OFFSET` above v2's.
  Error rate and latency cannot catch it; only comparing its answers with
  stable's on the same requests (shadow scoring) does.

Everything the server needs is in the graph: the demo's server process loads
these directories like any other SavedModel, nothing is faked around them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before TensorFlow is imported: its C++ start-up chatter is noise in a demo.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FAULTY_FROM = 7.0  # inputs are drawn from [0, 10): v3 fails on ~30% of them
FAULTY_DELAY_S = 0.04
RETRAIN_DRIFT = 0.0005  # v2 - v1, per answer: below the tolerance (0.001), "the same"
WRONG_OFFSET = 0.2  # v4 - v2, per answer: the bug shadow scoring must catch


@dataclass(frozen=True)
class VersionRecipe:
    version: int
    offset: float
    fail_from: float | None = None
    delay_s: float = 0.0

    @property
    def description(self) -> str:
        text = f"y = 0.5x + {self.offset:g}"
        if self.fail_from is not None:
            text += f"; fails for x >= {self.fail_from:g}"
        if self.delay_s:
            text += f"; +{self.delay_s * 1000:.0f}ms per call"
        return text


RECIPES: tuple[VersionRecipe, ...] = (
    VersionRecipe(1, 2.0),
    VersionRecipe(2, 2.0 + RETRAIN_DRIFT),
    VersionRecipe(3, 2.0 + RETRAIN_DRIFT, fail_from=FAULTY_FROM, delay_s=FAULTY_DELAY_S),
    VersionRecipe(4, 2.0 + RETRAIN_DRIFT + WRONG_OFFSET),
)


def _module(recipe: VersionRecipe) -> Any:
    import tensorflow as tf
    from tensorflow.python.data.experimental.ops import testing as data_testing

    class HalfPlus(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            # Variables, so the server restores a checkpoint as for a real model.
            self.slope = tf.Variable(0.5, name="slope")
            self.offset = tf.Variable(recipe.offset, name="offset")

        # TensorFlow ships no type information: its decorators are untyped.
        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=[tf.TensorSpec([None], tf.float32, name="x")]
        )
        def predict(self, x: Any) -> dict[str, Any]:
            guards = []
            if recipe.fail_from is not None:
                guards.append(
                    tf.debugging.assert_less(
                        x,
                        tf.constant(recipe.fail_from, tf.float32),
                        message=f"demo v{recipe.version}: x must be below {recipe.fail_from:g}",
                    )
                )
            if recipe.delay_s > 0:
                # tf.py_function would not survive loading in another process; a
                # one-element dataset with the sleep transformation is pure graph.
                pause = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).apply(
                    data_testing.sleep(int(recipe.delay_s * 1_000_000))
                )
                guards.append(pause.reduce(tf.constant(0, tf.int64), lambda acc, v: acc + v))
            with tf.control_dependencies(guards):
                return {"y": self.slope * x + self.offset}

    return HalfPlus()


def export_version(base: Path, recipe: VersionRecipe) -> Path:
    """Write `base/<version>` atomically (staged beside it, then renamed)."""
    import tensorflow as tf

    target = base / str(recipe.version)
    staging = base / f".staging-{recipe.version}"
    shutil.rmtree(staging, ignore_errors=True)
    module = _module(recipe)
    tf.saved_model.save(
        module, str(staging), signatures={"serving_default": module.predict.get_concrete_function()}
    )
    # The server's version poller must never see a half-written directory.
    staging.rename(target)
    return target


def export_demo_models(base: Path, recipes: tuple[VersionRecipe, ...] = RECIPES) -> list[Path]:
    """Export every recipe under `base` (the model's base path); returns the version dirs."""
    base.mkdir(parents=True, exist_ok=True)
    return [export_version(base, recipe) for recipe in recipes]


def main(argv: list[str] | None = None) -> int:
    """`python -m controller.demo.models BASE`: export every version under BASE.

    The demo runs this as a subprocess so TensorFlow's start-up output lands in a
    log file and the export overlaps the server's own start-up.
    """
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m controller.demo.models BASE_PATH", file=sys.stderr)
        return 2
    for path in export_demo_models(Path(args[0])):
        print(f"exported {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
