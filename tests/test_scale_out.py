"""Scale-out on Celery: two worker processes on one queue share the answers, and a worker
stopped with SIGTERM (warm shutdown) finishes what it runs while the other takes the queue."""

import asyncio
import signal
import time

import pytest
from channels.db import database_sync_to_async

from pawa.chat.models import Conversation
from pawa.generation.models import Generation
from tests.chat_helpers import connect
from tests.worker_processes import SMOL, start_worker, stop_worker, wait_until_ready

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
STORY = "Write a long story about the animals of the Serengeti."


@pytest.fixture
def two_workers(real_models, tmp_path):
    """Workers `alpha` and `beta`, one answer at a time each; {name: (process, log path)}."""
    logs = {name: tmp_path / f"{name}.log" for name in ("alpha", "beta")}
    processes = {name: start_worker(name, path, concurrency=1) for name, path in logs.items()}
    try:
        wait_until_ready(processes)
        yield {name: (processes[name], logs[name]) for name in processes}
    finally:
        for process in processes.values():
            stop_worker(process)


def ran_on(logs: dict, generation_id) -> list[str]:
    """The workers whose log says they started this generation (its id is on the line)."""
    return [name for name, (_process, path) in logs.items()
            if f"generation {generation_id} started on {name}@" in path.read_text()]


async def send_answers(user, count: int, max_tokens: int) -> list[str]:
    """Send one message in each of `count` new conversations; the generation ids, in order."""
    ws = await connect(user)
    ids = []
    for _ in range(count):
        conversation = await database_sync_to_async(Conversation.objects.create)(
            user=user, model_name=SMOL, temperature=0, max_tokens=max_tokens)
        await ws.send_json_to({"type": "send", "conversation_id": conversation.id, "content": STORY})
        accepted = await ws.receive_json_from(timeout=10)
        assert accepted["type"] == "accepted", accepted
        ids.append(accepted["answer"]["generation_id"])
    await ws.disconnect()  # the answers go on without a reader
    return ids


async def wait_finished(ids: list[str], timeout: float) -> list[Generation]:
    deadline = time.monotonic() + timeout
    while True:
        generations = await database_sync_to_async(
            lambda: list(Generation.objects.filter(id__in=ids).order_by("created_at")))()
        if all(not g.is_active for g in generations):
            return generations
        assert time.monotonic() < deadline, [g.status for g in generations]
        await asyncio.sleep(0.3)


async def test_two_conversations_run_at_the_same_time_on_two_workers(owner, outsider, two_workers):
    ids = [*(await send_answers(owner, 1, 32)), *(await send_answers(outsider, 1, 32))]
    first, second = await wait_finished(ids, timeout=60)
    assert first.status == second.status == "complete"
    workers = [ran_on(two_workers, generation_id) for generation_id in ids]
    assert sorted(w for names in workers for w in names) == ["alpha", "beta"], workers
    # Overlapping time intervals: each started before the other finished.
    assert first.started_at < second.finished_at and second.started_at < first.finished_at


async def test_a_worker_stopped_with_sigterm_loses_no_queued_answer(owner, two_workers, settings):
    settings.PAWA_MAX_CONCURRENT_GENERATIONS = 8
    ids = await send_answers(owner, 5, 24)
    # Stop whichever worker started an answer first while others still wait in the queue.
    deadline = time.monotonic() + 30
    while not (busy := [name for generation_id in ids for name in ran_on(two_workers, generation_id)]):
        assert time.monotonic() < deadline, "no worker started an answer"
        await asyncio.sleep(0.1)
    stopped, process = busy[0], two_workers[busy[0]][0]
    queued = await database_sync_to_async(Generation.objects.filter(id__in=ids, status="queued").count)()
    assert queued >= 1
    process.send_signal(signal.SIGTERM)
    generations = await wait_finished(ids, timeout=60)
    assert [g.status for g in generations] == ["complete"] * 5, [(g.status, g.error) for g in generations]
    assert await asyncio.to_thread(process.wait, 30) == 0  # a warm shutdown, not a crash
    other = "beta" if stopped == "alpha" else "alpha"
    workers = [ran_on(two_workers, generation_id) for generation_id in ids]
    assert all(len(names) == 1 for names in workers), workers
    assert sum(names == [other] for names in workers) >= queued
