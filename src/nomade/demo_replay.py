"""``nomade demo --serve``'s live cluster: the end of the bundled trace replayed at a chosen speed.

``plan_replay(trace, max_jobs)`` splits the trace at a cut time: the demo imports (and trains on)
the jobs before it; the last ``max_jobs`` submitted at or after it, and the jobs still queued or
running at it, are held back. ``Replay`` walks a clock from the cut at ``speed`` trace seconds per
second: a job is written PENDING at its submit time (with its submit-stage score), RUNNING at its
start (with its start-stage score where the bundle has a start model) and with its real outcome
at its end (``store.jobs.upsert_jobs``, is_final). A job that passed several of these within one
step is written once, in its latest state; every stage is scored once.

Times go on the demo clock: a trace moment ``t`` is stored as ``wall0 + (t - cut) / speed``, so
the jobs happen now and the pages' recent windows (the last day's risk levels, production
performance, the alerts' event window) see them. Durations, limits and requests stay the trace's,
and scores are computed as of the trace's moments (the bundle's history ends at the cut).

``LiveDemo`` runs the replay, the monitoring engine (the collectors that work on this machine,
every few seconds) and the alert engine (after each monitor cycle and after new scores: a
high-risk job fires the ``high_risk`` rule) in one thread over the demo store until stopped.

Runtime-safe: stdlib + numpy + onnxruntime (through nomade.scoring); Python 3.9.
"""

import bisect
import dataclasses
import heapq
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import ConfigError, IngestError, ModelError, NomadeError
from .ingest.swf import open_trace, read_swf, trace_name
from .jobrecord import JobRecord
from .store import jobs as store_jobs
from .store import scores as store_scores

log = logging.getLogger(__name__)

DEFAULT_SPEED = 600.0          # trace seconds per wall second: ten trace minutes a second
DEFAULT_JOBS = 2000            # jobs held back for the replay (the last 4 trace days of Atlas)
RECENT_WINDOW_S = 3600.0       # job_submit.lua's "recent submissions" window
PENDING, RUNNING, ENDED = 0, 1, 2
_OUTCOME_FIELDS = ("end_time", "elapsed_s", "total_cpu_s", "max_rss_mb", "exit_code", "exit_signal",
                   "derived_exit_code", "derived_exit_signal", "cancelled_by")

# (job, stage) -> (risk, level, model_version, reasons as JSON text), or None: not scored
ScoreFn = Callable[["ReplayJob", str], Optional[Tuple[float, str, str, str]]]


@dataclass
class ReplayJob:
    """One held-back job: the trace's record (trace times, the real outcome), its owner's
    submissions in the hour before it (what job_submit.lua counts), and when it starts and ends
    in the replay (``replay_times``)."""
    record: JobRecord
    recent: int = 0
    start: Optional[float] = field(init=False)
    end: float = field(init=False)

    def __post_init__(self) -> None:
        self.start, self.end = replay_times(self.record)

    @property
    def submit(self) -> float:
        return float(self.record.submit_time)

    def after(self, phase: int) -> int:
        """The state after ``phase``: a job that never started goes from pending to ended."""
        return RUNNING if phase == PENDING and self.start is not None else ENDED

    def next_event(self, phase: int) -> float:
        if phase == PENDING and self.start is not None and self.start < self.end:
            return self.start
        return self.end


def replay_times(rec: JobRecord) -> Tuple[Optional[float], float]:
    """(start, end) of a job in the replay: the trace's; where the trace records no wait (SWF
    wait -1, as in the LLNL Atlas log) but a run time, the job starts when submitted and ends
    its run time later; a job without either ends when submitted."""
    if rec.submit_time is None:
        raise ValueError(f"job {rec.job_id} has no submit time")
    start = rec.start_time
    if start is None and rec.elapsed_s is not None:
        start = rec.submit_time
    end = rec.end_time
    if end is None:
        end = start + rec.elapsed_s if start is not None and rec.elapsed_s is not None else (start or rec.submit_time)
    return (None if start is None else float(start)), float(end)


def job_end(rec: JobRecord) -> float:
    return replay_times(rec)[1]


@dataclass
class ReplayPlan:
    """The jobs held back from the demo's import (by submit time) and the cut they start at."""
    cluster: str
    source: str
    cut: float
    jobs: List[ReplayJob]
    held: FrozenSet[Tuple[str, str]] = field(default_factory=frozenset, repr=False)

    def imported(self, rec: JobRecord) -> bool:
        """Whether the demo's import takes ``rec`` (the held-back jobs come later, live)."""
        return (rec.cluster, rec.job_id) not in self.held

    def summary(self) -> str:
        from datetime import datetime, timezone
        day = datetime.fromtimestamp(self.cut, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
        return f"{len(self.jobs)} jobs held back for the live replay (from {day} UTC on)"


def plan_replay(path: Union[str, Path], max_jobs: int = DEFAULT_JOBS, cluster: Optional[str] = None) -> ReplayPlan:
    """Read the SWF trace at ``path`` and hold back its last ``max_jobs`` submissions (and the
    jobs queued or running when the first of them was submitted). The cluster and source are
    the ones ``ingest.swf.import_swf`` gives the same file."""
    name = trace_name(path)
    cluster = cluster or name
    records = []
    with open_trace(path) as fh:
        try:
            for _, item, _ in read_swf(fh, cluster):
                if isinstance(item, JobRecord) and item.submit_time is not None:
                    records.append(item)
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise IngestError(f"{path}: cannot read the trace: {exc}") from None
    return plan_from_records(records, cluster, f"swf:{name}", max_jobs)


def plan_from_records(records: Sequence[JobRecord], cluster: str, source: str,
                      max_jobs: int = DEFAULT_JOBS) -> ReplayPlan:
    """``plan_replay`` over records already read (all with a submit time)."""
    if max_jobs < 1:
        raise ConfigError(f"replay of {max_jobs} jobs: expected at least 1")
    if not records:
        raise IngestError("the trace has no job with a submit time to replay")
    submits = sorted(float(r.submit_time) for r in records)
    cut = submits[max(0, len(submits) - max_jobs)]
    held = [r for r in records if float(r.submit_time) >= cut or job_end(r) > cut]
    held.sort(key=lambda r: (float(r.submit_time), r.job_id))
    by_owner: Dict[Any, List[float]] = {}
    for r in records:
        by_owner.setdefault(r.uid if r.uid is not None else r.user, []).append(float(r.submit_time))
    for ts in by_owner.values():
        ts.sort()
    jobs = []
    for r in held:
        ts = by_owner.get(r.uid if r.uid is not None else r.user, [])
        t = float(r.submit_time)
        recent = bisect.bisect_left(ts, t) - bisect.bisect_left(ts, t - RECENT_WINDOW_S)
        jobs.append(ReplayJob(r, recent))
    return ReplayPlan(cluster, source, cut, jobs, frozenset((r.cluster, r.job_id) for r in held))


@dataclass
class StepResult:
    """What one step wrote."""
    trace_time: float
    submitted: int = 0
    started: int = 0
    ended: int = 0
    jobs_written: int = 0
    scores_written: int = 0


class Replay:
    """Walks the trace clock and writes what happened. ``score`` (None: unscored) gives a job's
    score at a stage; ``clock`` is the wall clock (tests pass a fake). Not thread-safe: one
    thread steps it."""

    def __init__(self, store, plan: ReplayPlan, *, speed: float = DEFAULT_SPEED,
                 score: Optional[ScoreFn] = None, clock: Callable[[], float] = time.time):
        if not speed > 0 or speed == float("inf"):
            raise ConfigError(f"replay speed {speed!r}: expected a positive number (trace seconds per second)")
        self.store, self.plan, self.speed, self.score, self.clock = store, plan, float(speed), score, clock
        self.wall0: Optional[float] = None
        self._events = [(j.submit, i) for i, j in enumerate(plan.jobs)]
        heapq.heapify(self._events)
        self._phase: Dict[int, int] = {}
        self.totals = StepResult(trace_time=plan.cut)

    @property
    def done(self) -> bool:
        return not self._events

    def trace_time(self, wall: float) -> float:
        return self.plan.cut + (wall - self.wall0) * self.speed

    def wall_of(self, t: Optional[float]) -> Optional[float]:
        """A trace moment on the demo clock."""
        return None if t is None else self.wall0 + (float(t) - self.plan.cut) / self.speed

    def step(self) -> StepResult:
        """Bring the store up to the trace clock now: one upsert of the jobs whose state moved,
        one write of their new scores."""
        wall = self.clock()
        if self.wall0 is None:
            self.wall0 = wall
        now = self.trace_time(wall)
        res = StepResult(trace_time=now)
        moved: Dict[int, Tuple[Optional[int], int]] = {}
        later = []
        while self._events and self._events[0][0] <= now:
            _, i = heapq.heappop(self._events)
            job, old = self.plan.jobs[i], self._phase.get(i)
            # one state a step: every job is seen pending, then running, then ended
            new = PENDING if old is None else job.after(old)
            moved[i] = (old, new)
            self._phase[i] = new
            if new != ENDED:
                later.append((job.next_event(new), i))
        for event in later:          # due again at the next step at the earliest
            heapq.heappush(self._events, event)
        records, scores = [], []
        for i, (old, new) in sorted(moved.items()):
            job = self.plan.jobs[i]
            records.append(self.record_at(job, new))
            res.submitted += old is None
            started = new == RUNNING
            res.started += started
            res.ended += new == ENDED
            if old is None:
                scores += self._scores(job, "submit", job.submit)
            if started:
                scores += self._scores(job, "start", job.start)
        if records:
            store_jobs.upsert_jobs(self.store, records, self.plan.source, now=wall)
        if scores:
            store_scores.write_scores(self.store, scores)
        res.jobs_written, res.scores_written = len(records), len(scores)
        self._add(res)
        return res

    def record_at(self, job: ReplayJob, phase: int) -> JobRecord:
        """The job's record as Slurm would show it in ``phase``, its times on the demo clock."""
        r = job.record
        moved = dataclasses.replace(r, steps=list(r.steps), submit_time=self.wall_of(r.submit_time),
                                    start_time=self.wall_of(job.start),
                                    end_time=self.wall_of(job.end if job.start is not None else r.end_time))
        if phase == ENDED:
            return moved
        cleared: Dict[str, Any] = {name: None for name in _OUTCOME_FIELDS}
        cleared.update(state="PENDING" if phase == PENDING else "RUNNING", is_final=0, steps=[])
        cleared["state_raw"] = cleared["state"]
        if phase == PENDING:
            cleared.update(start_time=None, alloc_cpus=None, alloc_nodes=None, node_list=None, alloc_tres=None)
        return dataclasses.replace(moved, **cleared)

    def _scores(self, job: ReplayJob, stage: str, moment: Optional[float]) -> List[store_scores.Score]:
        if self.score is None:
            return []
        got = self.score(job, stage)
        if got is None:
            return []
        risk, level, version, reasons = got
        return [store_scores.Score(self.plan.cluster, job.record.job_id, stage, version, float(risk), level,
                                   reasons, self.wall_of(moment))]

    def _add(self, res: StepResult) -> None:
        t = self.totals
        t.trace_time = res.trace_time
        t.submitted += res.submitted
        t.started += res.started
        t.ended += res.ended
        t.jobs_written += res.jobs_written
        t.scores_written += res.scores_written


class BundleScores:
    """A ``ScoreFn`` over the current bundle (``why_ondemand.BundleCache``): at submit the Lua
    verdict sbatch printed (as ``nomade.production`` records it; the bundle's submit model where
    it has no Lua model), at start the bundle's start model (as the Prolog does). A bundle that
    cannot be loaded leaves the jobs unscored (one logged line)."""

    def __init__(self, bundles: Any, say: Callable[[str], None] = log.warning):
        self.bundles, self.say = bundles, say
        self.broken: Optional[str] = None
        self.skipped = 0

    @classmethod
    def from_config(cls, cfg, say: Callable[[str], None] = log.warning) -> "BundleScores":
        from .why_ondemand import BundleCache
        return cls(BundleCache.from_config(cfg), say)

    def __call__(self, job: ReplayJob, stage: str) -> Optional[Tuple[float, str, str, str]]:
        if self.broken is not None:
            return None
        try:
            scorer, lua = self.bundles.get()
        except ModelError as exc:
            self.broken = str(exc)
            self.say(f"replayed jobs are not scored: {exc}")
            return None
        req = request(job, stage)
        try:
            if stage == "submit" and lua is not None:
                v = lua.verdict(req)
                return float(v.risk), v.level, v.model_version or lua.version, json.dumps(v.reasons)
            if stage not in scorer.primary:
                return None
            [rs] = scorer.score([req], stage=stage)
            return rs.risk, rs.level, rs.model_version, json.dumps(rs.to_json()["reasons"])
        except (ValueError, TypeError, KeyError, OverflowError, ModelError) as exc:   # a value the model cannot take
            self.skipped += 1
            log.warning("replayed job %s: no %s score: %s", job.record.job_id, stage, exc)
            return None


def request(job: ReplayJob, stage: str) -> Dict[str, Any]:
    """The Lua ``req`` contract of a replayed job at ``stage``, in trace time (the bundle's
    history ends at the cut): nothing the job did after that stage."""
    from .why_ondemand import request_of
    r = job.record
    row = {"cluster": r.cluster, "job_id": r.job_id, "user": r.user, "uid": r.uid, "name": r.name,
           "partition": r.partition, "account": r.account, "qos": r.qos, "req_cpus": r.req_cpus,
           "req_nodes": r.req_nodes, "req_gpus": r.req_gpus, "req_mem_mb": r.req_mem_mb,
           "req_mem_per_cpu": r.req_mem_per_cpu, "timelimit_s": r.timelimit_s, "submit_time": r.submit_time,
           "start_time": job.start if stage != "submit" else None,
           "node_list": r.node_list if stage != "submit" else None}
    req = request_of(row)
    req["recent_submits"] = job.recent
    return req


class LiveDemo:
    """The replay, the monitor and the alert engine in one thread over ``cfg``'s store.
    ``found``: the collectors to try (None: the registry); after their first cycle only those
    that ran go on. ``score`` None: ``BundleScores`` over the current bundle."""

    def __init__(self, cfg, plan: ReplayPlan, *, speed: float = DEFAULT_SPEED, tick_s: float = 0.5,
                 collect_every_s: float = 5.0, clock: Callable[[], float] = time.time,
                 score: Optional[ScoreFn] = None, found: Optional[Mapping[str, Any]] = None,
                 channels: Optional[Sequence[Any]] = None, say: Callable[[str], None] = log.info):
        if not speed > 0 or speed == float("inf"):
            raise ConfigError(f"--speed {speed!r}: expected a positive number (trace seconds per second)")
        self.cfg, self.plan, self.speed = cfg, plan, float(speed)
        self.tick_s, self.collect_every_s, self.clock = float(tick_s), float(collect_every_s), clock
        self.score, self.found, self.channels, self.say = score, found, channels, say
        self.store: Any = None
        self.replay: Optional[Replay] = None
        self.engine: Any = None
        self.monitor: Any = None
        self._probed = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # ---- lifecycle
    def open(self) -> "LiveDemo":
        """Open the store and build the replay, the alert engine and the monitor."""
        from .store.db import store_from_config
        self.store = store_from_config(self.cfg)
        score = self.score if self.score is not None else BundleScores.from_config(self.cfg, self.say)
        self.replay = Replay(self.store, self.plan, speed=self.speed, score=score, clock=self.clock)
        if self.cfg.get("alerts.enabled"):
            from .alerts.engine import Engine
            self.engine = Engine(self.cfg, self.store, clock=self.clock, channels=self.channels,
                                 log=lambda line: log.info("demo alerts: %s", line))
        self.monitor = self._monitor(None)
        return self

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def run(self, stop: Optional[threading.Event] = None) -> None:
        """Tick until ``stop`` (else this demo's own event) is set; the store is opened and
        closed here (a SQLite connection stays in its thread)."""
        stop = stop or self._stop
        self.open()
        try:
            self.say(f"live replay: {len(self.plan.jobs)} jobs at {self.speed:g}x "
                     f"({self.speed / 60:g} trace minutes a second)")
            while not stop.is_set():
                self.tick()
                stop.wait(self.tick_s)
        finally:
            self.close()

    def start(self) -> "LiveDemo":
        self._thread = threading.Thread(target=self.run, name="nomade-demo-replay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the thread (after its current tick); True when it has ended."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True

    # ---- one tick
    def tick(self) -> Optional[StepResult]:
        """One replay step (then the prediction rules when it scored jobs) and the collectors
        that are due (then every rule). A problem is logged; the demo goes on."""
        res = None
        if self.replay is not None and not self.replay.done:
            try:
                res = self.replay.step()
            except NomadeError as exc:
                log.warning("demo replay: %s", exc)
            else:
                if res.scores_written and self.engine is not None:
                    self._prediction_pass()
                if self.replay.done:
                    self.say(f"live replay: the trace is over ({self.replay.totals.ended} jobs ended)")
        if self.monitor is not None:
            try:
                runs = self.monitor.cycle()
            except NomadeError as exc:
                log.warning("demo collectors: %s", exc)
            else:
                if runs and not self._probed:
                    self._probed = True
                    ok = [r.name for r in runs if r.ok]
                    self.monitor = self._monitor(ok) if ok else None
        return res

    def _prediction_pass(self) -> None:
        from .alerts.engine import PREDICTION_KINDS
        try:
            self.engine.evaluate(kinds=PREDICTION_KINDS)
        except NomadeError as exc:
            log.warning("demo alerts: %s", exc)

    def _monitor(self, only: Optional[List[str]]):
        from .monitor import Monitor
        if self.found is None:
            from .collectors.registry import registry
            self.found = registry()
        if not self.found:
            return None
        monitor = Monitor(self.cfg, self.found, self.store, only=only, interval_s=self.collect_every_s,
                          clock=self.clock, log=lambda line: log.info("demo %s", line),
                          after_cycle=self.engine.after_cycle if self.engine is not None else None)
        if self.engine is not None:
            self.engine.cluster = monitor.cluster
        return monitor


def background(plan: ReplayPlan, speed: float, say: Callable[[str], None] = log.info):
    """The ``(cfg, stop)`` body ``web.serve.serve_demo`` runs in its background thread."""
    def run(cfg, stop: threading.Event) -> None:
        LiveDemo(cfg, plan, speed=speed, say=say).run(stop)
    return run
