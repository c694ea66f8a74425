"""The engine's pacing: one request budget per profile (never above the service's rate, slowed by
a "too fast" answer for every task of the profile) and looks that relax in a queue and tighten as a
task nears its end."""
from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from comfyui_remote.engine.pacing import FAST_S, QUEUED_MAX_S, Budget, next_look, urgent
from comfyui_remote.engine.rules import RetryPolicy
from comfyui_remote.engine.tasks import TaskManager
from comfyui_remote.providers.base import Override
from comfyui_remote.tests.fakes.tensorart import FakeTensorArt


def most_in_one_second(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


async def test_a_budget_never_sends_more_than_its_limit_in_any_second():
    b = Budget.for_limit(5)
    stamps: list[float] = []

    async def one():
        await b.take()
        stamps.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(14)))
    assert most_in_one_second(stamps) <= 5 and len(stamps) == 14


async def test_a_too_fast_answer_pauses_and_slows_every_caller():
    b = Budget.for_limit(20)
    await b.take()
    b.slow_down(0.4)
    t0 = time.monotonic()
    await b.take()
    assert time.monotonic() - t0 >= 0.39
    assert b.rate is not None and b.ceiling is not None and b.rate < b.ceiling
    rate = b.rate
    b.slow_down(0.0)  # the same refusal seen twice (transport and provider) cuts the rate once
    assert b.rate == rate


async def test_an_urgent_request_takes_the_next_free_turn_and_a_cancelled_waiter_leaves_the_queue():
    b = Budget.for_limit(11)  # 10 a second
    order: list[str] = []

    async def one(name: str, hurry: bool = False):
        if hurry:
            with urgent():
                await b.take()
        else:
            await b.take()
        order.append(name)

    routine = [asyncio.ensure_future(one(f"look{i}")) for i in range(25)]
    await asyncio.sleep(0)
    gone = routine.pop(20)  # a task stopped while it waited
    gone.cancel()
    while len(order) < 10:  # the first second's ten are gone: the other 14 wait for the window to move
        await asyncio.sleep(0.01)
    await one("cancel", hurry=True)
    await asyncio.gather(*routine)
    at = order.index("cancel")
    assert at <= 11, order  # first of the next second's ten, not the 25th (one may be on its way)
    assert order[:at] == [f"look{i}" for i in range(at)]  # the others keep their order
    assert len(order) == 25 and "look20" not in order


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_that_belong_together_go_out_back_to_back():
    """A look and the result list it calls for are not held apart while the profile is quiet (a
    one-request bucket held each hop 1/rate s: 111 ms on SpeedPix, 250 ms on TAMS)."""
    clock = FakeClock()
    b = Budget.for_limit(10, clock=clock)
    for _ in range(9):
        assert b.delay() == 0
        b.note_sent()
    window = 10 / 9  # 9 a second, in a window one spacing longer (a request slower on the way)
    assert b.delay() == pytest.approx(window)  # the tenth in that second waits for the window
    clock.now += 0.4
    assert b.delay() == pytest.approx(window - 0.4)
    clock.now += window - 0.4
    assert b.delay() == 0


def test_any_one_second_window_holds_one_less_than_the_limit():
    clock = FakeClock()
    b = Budget.for_limit(5, clock=clock)
    stamps = []
    for _ in range(40):
        clock.now += b.delay()
        b.note_sent()
        stamps.append(clock.now)
        clock.now += 0.01
    assert most_in_one_second(stamps) == 4


def test_a_refusal_halves_the_window_and_calm_earns_it_back():
    clock = FakeClock()
    b = Budget.for_limit(9, clock=clock)  # 8 per second
    b.slow_down(2.0)
    assert b.delay() == pytest.approx(2.0)
    clock.now += 2.0
    for _ in range(4):  # now 4 per second
        assert b.delay() == 0
        b.note_sent()
    assert b.delay() == pytest.approx(5 / 4)
    clock.now += 11.0  # calm longer than RECOVER_AFTER_S
    assert b.delay() == 0 and b.rate == pytest.approx(6.0)


def test_no_limit_means_no_waiting():
    assert Budget.for_limit(None).rate is None and Budget.for_limit(0).rate is None


@pytest.mark.parametrize("kw,expect", [
    (dict(state="queued", queue_position=1), 1.0),
    (dict(state="queued", queue_position=40), QUEUED_MAX_S),
    (dict(state="running"), 1.0),  # nothing known about its end: the profile's interval
    (dict(state="running", eta_s=0.3), FAST_S),  # about to end: look fast
    (dict(state="running", eta_s=30.0), 1.0),
    (dict(state="running", progress=0.9, running_for=9.0), 1.0 / 3),  # ~1 s left by the progress rate
    (dict(state="running", usual_s=10.0, running_for=9.7), FAST_S),  # as long as it usually takes
    (dict(state="running", usual_s=10.0, running_for=30.0), 1.0),  # far longer than usual: no guess
    (dict(state="running", eta_s=3.0, push=True), 3.0),  # a live channel says when it ends
])
def test_looks_relax_in_the_queue_and_tighten_near_the_end(kw, expect):
    assert next_look(1.0, **kw) == pytest.approx(expect)


@contextlib.asynccontextmanager
async def tams_engine(tmp_path, qps: int, run_s: float, extra: str = ""):
    """A TAMS fake refusing more than ``qps`` requests a second (429), and a TaskManager with one
    profile ``ta`` looking at each task every 0.05 s; yields (fake, manager, call)."""
    fake = FakeTensorArt()
    fake.qps_limit = qps
    fake.queue_s, fake.run_s = 0.2, run_s
    await fake.start()
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text(f'[profiles.ta]\nprovider = "tensorart"\nurl = "{fake.url}"\n'
                                        f'api_key = "{fake.credentials().get("TENSORART_API_KEY", "")}"\n'
                                        f'poll_interval_s = 0.05\n{extra}')
    m = TaskManager(home, tmp_path / "out", policy=RetryPolicy(attempts=4, base_s=0.05, cap_s=0.5)).start(reattach=False)

    async def call(coro):
        return await asyncio.wait_for(asyncio.wrap_future(m.call(coro)), 120)

    try:
        yield fake, m, call
    finally:
        await asyncio.to_thread(m.stop)
        await fake.stop()


def submit_many(m, call, n: int, tag: str):
    return asyncio.gather(*(call(m.submit("ta", "700000000000000001", [Override("6.text", "text", f"{tag}{i}")],
                                          reuse=False)) for i in range(n)))


async def test_many_tasks_of_one_profile_stay_inside_the_services_rate(tmp_path):
    """Twenty TAMS tasks at once, polled every 0.05 s each: the app's 5 QPS is never exceeded
    (the fake refuses anything faster with 429), and every result arrives."""
    async with tams_engine(tmp_path, qps=5, run_s=0.5) as (fake, m, call):
        ids = await submit_many(m, call, 20, "n")
        snaps = await asyncio.gather(*(call(m.wait(t)) for t in ids))
    assert [s["state"] for s in snaps] == ["succeeded"] * 20, [s["message"] for s in snaps]
    api = [s.t for s in fake.log if s.route != "file"]
    assert fake.rate_limited == 0 and most_in_one_second(api) <= 5


async def test_a_cancel_goes_out_ahead_of_the_looks_queued_for_the_budget(tmp_path):
    """Twelve TAMS tasks keep the app's QPS busy with looks; a cancel of one of them takes the
    next free request, not its turn behind every look already waiting (about 12 of them, while the
    remote task goes on billing)."""
    async with tams_engine(tmp_path, qps=20, run_s=60.0, extra="max_concurrent = 12\n") as (fake, m, call):
        ids = await submit_many(m, call, 12, "c")
        gets = lambda: sum(1 for s in fake.log if s.route == "get_job")  # noqa: E731
        start = gets()

        async def all_looking():  # every task is looking: the budget has a queue
            while gets() < start + 12:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(all_looking(), 60)
        before = gets()
        await call(m.cancel(ids[7], "cancelled in a fan-out"))
        await fake.seen("cancel", timeout=30)
        looks_between = gets() - before
    assert looks_between <= 3, f"{looks_between} looks went out between the cancel and its request"
