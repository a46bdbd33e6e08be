"""The Celery side of Ackbox's drain benchmark: one `noop` task, Redis as broker (db 5) and result backend (db 6).

Results go to a database of their own so the drain is over when that database holds one key per job.
"""
import os
import sys

from celery import Celery

REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
app = Celery("tasks", broker=f"{REDIS}/5", backend=f"{REDIS}/6")


@app.task
def noop(i):
    """Does nothing, so the drain measures the queue and not the work."""
    return None


def preload(jobs):
    """Enqueue `jobs` tasks over one pooled producer connection (Celery's cheapest bulk path).

    The Redis result backend subscribes the caller to every task's result channel as it is sent (so that `.get()`
    can wait); this client never waits, and 100,000 subscriptions made the untimed preload take ~10 minutes.
    """
    app.backend.on_task_call = lambda *args, **kwargs: None
    with app.producer_or_acquire() as producer:
        for i in range(jobs):
            noop.apply_async((i,), producer=producer)


if __name__ == "__main__":
    preload(int(sys.argv[1]))
