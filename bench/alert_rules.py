"""Benchmark (not a test): the cost of one alert-engine pass with 200 rules over 5,000 series
(issue 15: <= 50 ms per cycle).

The store holds 5,000 series (50 metrics x 100 label sets, one sample a minute for an hour:
300,000 samples; the last metric is a capacity the divide_by rules read). The rules: 180 value
rules (each over one metric's 100 series; half with a label matcher, exact or a regular
expression, a quarter with a divide_by twin), and 20 trend rules (rate, acceleration, time to a
limit) each over 5 series of a 60-sample window, the proportion of a real site (a few dozen
filesystems and mounts are projected; node, queue and license levels are compared). About 5 %
of the series are over their threshold, so alerts fire in the first pass and stay firing after.
Channels: none (delivery is the latency benchmark, bench/alert_latency.py).

    python bench/alert_rules.py [--series 5000] [--rules 200] [--passes 20]

Before each steady pass a new sample of every series is written (not timed), so every latest
value and every trend window has changed; the pass is what `nomade collect` runs after a cycle
(``Engine.after_cycle`` with the cycle's metrics, which the series cache takes instead of
reading them back). A second pass on the same data through ``Engine.evaluate`` reads every newest
sample back from the store (what a pass after an ingest, or a new engine, costs). Prints the first pass (alerts created) and the median
and worst of the steady passes:
``evaluate`` = store reads + rule evaluation, ``pass`` = that + the state machine + its write
(wall clock), and the CPU time of a pass (what a busy shared machine distorts least).
"""

import argparse
from types import SimpleNamespace
import statistics
import tempfile
import time
from pathlib import Path

METRICS = 50


def build(store, n_series: int, now: float, minutes=range(60)) -> None:
    from nomade.collectors.base import Metric
    from nomade.store import metrics as sm
    per = n_series // METRICS
    for minute in minutes:
        t = now - (59 - minute) * 60.0
        batch = []
        for k in range(METRICS):
            for i in range(per):
                hot = i % 20 == 0                     # 5 % over the threshold
                v = (95.0 if hot else 40.0) + (i % 7) + 0.05 * minute * (i % 3)
                if k == METRICS - 1:
                    v = 100.0                         # bench.m49: the capacity divide_by reads
                batch.append(Metric.of(f"bench.m{k}", v, inst=str(i), site="a" if i % 2 else "b"))
        sm.write_cycle(store, "bench", "bench", batch, t)
        sm.record_run(store, "bench", t, True, "", 0.01, len(batch))
    return SimpleNamespace(name="bench", ok=True, metrics=batch, ts=t)   # the last cycle, as Monitor has it


def rules_text(n_rules: int) -> str:
    out = []
    n_trend = n_rules // 10
    for j in range(n_rules - n_trend):
        k = j % (METRICS - 1)
        extra = f'labels = {{ site = "{"a" if j % 4 == 1 else "~b"}" }}\n' if j % 2 else ""
        div = f'divide_by = "bench.m{METRICS - 1}"\nscale = 100.0\n' if j % 4 == 1 else ""
        out.append(f'[[rule]]\nname = "v{j}"\nmetric = "bench.m{k}"\n{extra}{div}'
                   f'levels = {{ warning = 90, critical = {99 + j % 3} }}\nclear = 85\nunit = "percent"\n'
                   'summary = "{inst} at {value_words}"\n')
    for j in range(n_trend):
        measure = ("rate", "accel", "ttl")[j % 3]
        lim = 'limit = 200.0\nop = "<"\nthreshold = 86400\n' if measure == "ttl" else "threshold = 0.001\n"
        out.append(f'[[rule]]\nname = "t{j}"\nmetric = "bench.m{j % METRICS}"\nmeasure = "{measure}"\n'
                   f'labels = {{ inst = "~^[0-4]$" }}\nwindow = "1h"\n{lim}summary = "{{inst}} {{value_words}}"\n')
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=5000)
    ap.add_argument("--rules", type=int, default=200)
    ap.add_argument("--passes", type=int, default=20)
    a = ap.parse_args()
    from nomade.alerts.engine import Engine
    from nomade.alerts.rules import RuleSet, rules_from_doc
    from nomade.config import load_config
    from nomade.store import metrics as sm
    from nomade.store.db import open_store
    try:
        import tomllib
    except ImportError:
        import tomli as tomllib

    root = Path(tempfile.mkdtemp(prefix="nomade-alert-bench-"))
    cfg = load_config(None, {"data_dir": str(root)})
    store = open_store(root / "nomade.db")
    now = time.time()
    build(store, a.series, now)
    rules = rules_from_doc(tomllib.loads(rules_text(a.rules)), "bench")
    clock = [now]
    engine = Engine(cfg, store, rules=RuleSet(rules), channels=[], clock=lambda: clock[0])
    engine.cluster = "bench"
    first = engine.evaluate(now=now)
    evals, totals, cpus, cold = [], [], [], []
    for i in range(a.passes):
        cycle = build(store, a.series, now, [60 + i])  # a new cycle of every series (not timed)
        clock[0] = now + 60 * (i + 1)
        c0 = time.process_time()
        r = engine.after_cycle([cycle])           # what `nomade collect` runs after the cycle
        cpus.append((time.process_time() - c0) * 1000)
        evals.append(r.eval_s * 1000)
        totals.append(r.total_s * 1000)
        c0 = time.process_time()
        engine.evaluate(now=clock[0] + 1)        # the same without the cycle: reads every series back
        cold.append((time.process_time() - c0) * 1000)
    print(f"series {sm.series_count(store)}, rules {len(rules)}, findings {first.findings}, "
          f"open alerts {sum(first.states.values())}")
    print(f"first pass (alerts created): evaluate {first.eval_s * 1000:.1f} ms, pass {first.total_s * 1000:.1f} ms")
    print(f"steady passes ({a.passes}): evaluate median {statistics.median(evals):.1f} ms "
          f"(max {max(evals):.1f}), pass median {statistics.median(totals):.1f} ms (max {max(totals):.1f}); "
          f"CPU time of a pass: median {statistics.median(cpus):.1f} ms")
    print(f"a pass that reads every newest sample back from the store (ingest, a new engine): "
          f"CPU time median {statistics.median(cold):.1f} ms")
    store.close()


if __name__ == "__main__":
    main()
