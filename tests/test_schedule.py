import pytest

from bermo_prune.pruners import get_pruner
from bermo_prune.schedule import SCHEDULES, Constant, Cubic, Linear, OneShot, Scheduler


def test_cubic_endpoints_and_formula():
    s = Cubic(initial=1.0, final=0.1, total=100, warmup=10, cooldown=20)
    assert [s(t) for t in (0, 5, 10)] == [1.0, 1.0, 1.0]
    assert s(80) == 0.1 and s(99) == 0.1 and s(1000) == 0.1
    t = 30
    assert s(t) == pytest.approx(0.1 + 0.9 * (1 - (t - 10) / 70) ** 3)
    values = [s(t) for t in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert s.end_step() == 80


def test_cubic_rising_for_thresholds_and_lambdas():
    s = Cubic(initial=0.0, final=2.0, total=50)
    values = [s(t) for t in range(51)]
    assert values[0] == 0.0 and values[-1] == 2.0
    assert all(a <= b for a, b in zip(values, values[1:], strict=False))


def test_linear_constant_one_shot():
    lin = Linear(initial=1.0, final=0.0, total=10)
    assert [lin(t) for t in (0, 5, 10)] == [1.0, 0.5, 0.0]
    assert Constant(0.3)(0) == Constant(0.3)(999) == 0.3
    one = OneShot(initial=1.0, final=0.2, at=7)
    assert (one(6), one(7), one(100)) == (1.0, 0.2, 0.2)


def test_bad_schedules():
    with pytest.raises(ValueError, match=r"warmup \(60\) \+ cooldown \(40\) must be less than total \(100\)"):
        Cubic(total=100, warmup=60, cooldown=40)
    assert SCHEDULES["cubic"](initial=1.0, final=0.5, total=10)(10) == 0.5  # the registry builds by name


def test_scheduler_due_and_state():
    sch = Scheduler(get_pruner("magnitude"), Cubic(1.0, 0.1, total=25, cooldown=2), update_every=10)
    due = []
    for _ in range(30):
        sch.step += 1
        if sch.due():
            due.append(sch.step)
    assert due == [10, 20, 23, 30]  # every 10, plus the schedule's end (25 - 2)
    other = Scheduler(get_pruner("magnitude"), sch.schedule)
    other.load_state_dict(sch.state_dict())
    assert other.step == 30 and other.value() == 0.1
