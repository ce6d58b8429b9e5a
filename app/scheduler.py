"""The whole schedule in one table, and the `flask worker` process that runs it.

APScheduler runs only here, in its own process — never inside gunicorn workers or under the reloader,
where every job would run once per process. Jobs keep their state in Foyer's tables, so a worker that
was down catches up when it returns.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click
from flask import Flask, current_app

from app import jobs
from app.models import utcnow

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    id: str
    func: Callable[[Flask], None]
    seconds: float


def schedule(app: Flask) -> list[Job]:
    """Every scheduled job, with its interval."""
    return [
        Job("send_reminders", jobs.send_reminders, app.config["REMINDER_SWEEP_SECONDS"]),
        Job("drain_outbox", jobs.drain_outbox, app.config["OUTBOX_POLL_SECONDS"]),
        Job("heartbeat", jobs.heartbeat, 30),
        Job("expire_unverified_holds", jobs.expire_unverified_holds, 300),
        Job("queue_attendance_imports", jobs.queue_attendance_imports, 300),
        Job("purge_personal_data", jobs.purge_personal_data, 3600),
    ]


#: How often the main thread looks whether it was asked to stop.
STOP_POLL_SECONDS = 0.2


def build_scheduler(app: Flask) -> BackgroundScheduler:
    from apscheduler.schedulers.background import BackgroundScheduler  # noqa: PLC0415 — only `flask worker` schedules; a web worker never loads APScheduler
    from apscheduler.triggers.interval import IntervalTrigger  # noqa: PLC0415 — as above

    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                                                 "misfire_grace_time": 3600})
    for job in schedule(app):
        # First run straight away: a worker that was down catches up at once.
        scheduler.add_job(job.func, IntervalTrigger(seconds=job.seconds), args=[app], id=job.id, name=job.id,
                          next_run_time=utcnow())
    return scheduler


def register(app: Flask) -> None:
    @app.cli.command("worker")
    @click.option("--once", is_flag=True, help="Run every job once and exit (for cron or a quick check).")
    def worker(once: bool) -> None:
        """Run the background worker: drain the outbox and fire scheduled jobs."""
        flask_app = current_app._get_current_object()
        if once:
            for job in schedule(flask_app):
                job.func(flask_app)
            return
        scheduler = build_scheduler(flask_app)
        # One line per job run every few seconds drowns the log; jobs log what they actually did.
        logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)

        stopping: list[int] = []

        def _stop(signum, _frame):
            # Only a flag: the handler runs in the main thread wherever it happens to be, and calling into
            # the scheduler from there can deadlock on a lock the interrupted code holds. A second SIGTERM
            # (a service manager's, or `make run` stopping its process group) has nothing to add.
            if not stopping:
                stopping.append(signum)

        signal.signal(signal.SIGTERM, _stop)
        scheduler.start()
        logger.info("Worker started with jobs: %s", ", ".join(j.id for j in schedule(flask_app)))
        try:
            while not stopping:
                time.sleep(STOP_POLL_SECONDS)
            logger.info("Worker stopping (signal %s)", stopping[0])
        except KeyboardInterrupt:
            logger.info("Worker stopping (interrupted)")
        finally:
            scheduler.shutdown(wait=True)  # jobs that are running finish
