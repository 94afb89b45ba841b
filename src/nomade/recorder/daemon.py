"""The recorder loop: sample every ``interval_s``, spool the samples, raise early warnings.

Scheduling uses ``time.monotonic`` (wall-clock jumps neither skip nor bunch passes); a pass that
overruns is not made up for. SIGTERM/SIGINT stop the loop after the current pass, the spool is
closed (fsynced) on the way out.
"""

import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from .gpu import GpuProbe
from .sample import JobSample
from .sampler import Sampler, SamplerPaths
from .spool import SpoolWriter
from .warning import EarlyWarning, Notifier, SeriesScorer, WarningEvent, WarningPolicy

MB = 1024 * 1024


@dataclass
class RecorderOptions:
    spool_dir: Path
    interval_s: float = 30.0
    spool_max_mb: float = 64.0
    fsync_interval_s: float = 60.0
    notify_command: str = ""
    cluster: str = ""
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    warning: WarningPolicy = field(default_factory=WarningPolicy)
    paths: SamplerPaths = field(default_factory=SamplerPaths)
    use_gpu: bool = True


@dataclass
class PassResult:
    samples: List[JobSample]
    events: List[WarningEvent]
    seconds: float


class Recorder:
    def __init__(self, opts: RecorderOptions, series_scorer: Optional[SeriesScorer] = None):
        self.opts = opts
        gpu = GpuProbe.open() if opts.use_gpu else None
        self.sampler = Sampler(opts.node, opts.cluster, opts.paths, gpu=gpu)
        self.spool = SpoolWriter(opts.spool_dir, int(opts.spool_max_mb * MB), opts.fsync_interval_s)
        self.warning = EarlyWarning(opts.warning, series_scorer)
        self.notifier = Notifier(opts.notify_command, opts.spool_dir)
        self.stop_event = threading.Event()

    def run_once(self) -> PassResult:
        t0 = time.monotonic()
        samples = self.sampler.sample()
        events = self.warning.observe(samples)
        for ev in events:
            self.notifier.notify(ev)
        self.spool.write([s.to_record(0) for s in samples] + [e.to_record() for e in events])
        return PassResult(samples, events, time.monotonic() - t0)

    def run(self, on_pass: Optional[Callable[[PassResult], None]] = None,
            max_passes: Optional[int] = None) -> int:
        """Loop until stopped (signal or ``stop()``); returns the number of passes."""
        passes = 0
        next_at = time.monotonic()
        try:
            while not self.stop_event.is_set():
                result = self.run_once()
                passes += 1
                if on_pass is not None:
                    on_pass(result)
                if max_passes is not None and passes >= max_passes:
                    break
                next_at += self.opts.interval_s
                now = time.monotonic()
                if next_at < now:                 # overran: start the next pass from now
                    next_at = now + self.opts.interval_s
                self.stop_event.wait(next_at - now)
        finally:
            self.spool.close()
        return passes

    def stop(self, *_args) -> None:
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.stop)
