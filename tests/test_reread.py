"""What changed between two passes of objects, by identity (lbroute.model.reread.Delta):
the agent's pass works on that alone, so an object missed is a Service never announced
and one reported twice is read twice. Random edits of a list (objects inserted, removed,
replaced, the whole list shuffled) against the sets of ids."""

from __future__ import annotations

import random
from typing import Any

import pytest

from lbroute.model.reread import Delta


@pytest.mark.parametrize("seed", range(5))
def test_delta_finds_exactly_what_came_and_went(seed: int) -> None:
    rng = random.Random(seed)
    pool: list[dict[str, Any]] = [{"i": i} for i in range(300)]
    delta = Delta()
    before: list[dict[str, Any]] = []
    for _ in range(400):
        after = list(before)
        for _ in range(rng.randint(0, 4)):
            x = rng.choice(pool)
            op = rng.random()
            if op < 0.3 and after:
                after.pop(rng.randrange(len(after)))
            elif all(x is not y for y in after):
                if op < 0.65 or not after:
                    after.insert(rng.randint(0, len(after)), x)
                else:
                    after[rng.randrange(len(after))] = x
        if rng.random() < 0.1:
            rng.shuffle(after)
        added, removed = delta.update(after)
        was, now = {id(x) for x in before}, {id(x) for x in after}
        assert sorted(map(id, added)) == sorted(now - was)
        assert sorted(map(id, removed)) == sorted(was - now)
        before = after


def test_the_first_pass_is_all_new_and_an_empty_one_all_gone() -> None:
    objects = [{"i": i} for i in range(3)]
    delta = Delta()
    assert delta.update(objects) == (objects, [])
    assert delta.update(tuple(objects)) == ([], [])
    assert delta.update([]) == ([], objects)
