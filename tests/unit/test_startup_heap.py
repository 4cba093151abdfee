"""The server freezes its start-up heap so full collections skip TensorFlow's objects."""

from __future__ import annotations

import gc

from serving.main import freeze_startup_heap


def test_objects_alive_at_startup_are_frozen_and_later_cycles_still_collected() -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    try:
        before = len(gc.get_objects())
        freeze_startup_heap()
        assert gc.get_freeze_count() >= before // 2  # the imported world moved out of reach
        assert len(gc.get_objects()) < before // 2

        # A cycle made after the freeze (a model loaded later) is still collected.
        a, b = Node(), Node()
        a.other, b.other = b, a
        del a, b
        assert gc.collect() >= 2
    finally:
        gc.unfreeze()
