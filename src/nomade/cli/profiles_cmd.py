"""``nomade profiles``: job profiles (a Gaussian mixture of behaviour vectors), one job's
profile, and drift of the recent month against the training window."""

import time
from typing import Optional

import click

from .context import AppContext, echo_json, pass_app


def current_caller():
    """Who runs this command (tests replace this one function)."""
    from ..caller_access import local_caller
    return local_caller()


@click.command()
@click.option("--cluster", default=None, metavar="NAME", help="Only jobs of this cluster.")
@click.option("-j", "--job", "job_id", default=None, metavar="JOBID",
              help="The profile of this ended job and whether it is an anomaly.")
@click.option("--drift", is_flag=True,
              help="Drift per feature: the last behaviour.drift_days against the window before.")
@click.option("--record", is_flag=True,
              help="With --drift: write behaviour.drift metrics for the alert engine (admins).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def profiles(app: AppContext, cluster: Optional[str], job_id: Optional[str], drift: bool,
             record: bool, as_json: bool) -> None:
    """Job profiles: size, name from distinguishing features, failure rate by class.

    Users see profiles of at least behaviour.min_count jobs and their own jobs in them.
    """
    from ..behaviour import one_blas_thread
    one_blas_thread()
    from ..behaviour import analysis, vectors
    from ..errors import AccessDenied
    from ..whyservice.access import check_access, is_admin
    caller = current_caller()
    group = app.config.get("privacy.admin_group")
    viewer = None if is_admin(caller, group) else caller
    if record and (not drift or viewer is not None):
        raise AccessDenied("--record: only root and admins write drift metrics, with --drift")
    opts = analysis.Options.from_config(app.config)
    with app.store(readonly=not record) as store:
        b = vectors.load(store, cluster)
        if drift:
            res = _drift(app, store, b, opts, cluster, record)
            echo_json(res) if as_json else click.echo(format_drift(res))
            return
    a = analysis.analyse(b, opts, with_network=False)
    if job_id is not None:
        from ..behaviour.similar import locate
        i = locate(b, job_id, cluster)
        if viewer is not None:
            uid = b.uid[i]
            check_access(viewer, {"job_id": job_id, "uid": None if uid != uid else int(uid),
                                  "user": b.user[i]}, group)
        model, profile, anomaly = (analysis.need(v, "profiles") for v in (a.model, a.profile, a.anomaly))
        p = int(profile[i])
        res = {"job_id": job_id, "profile": p, "name": model.labels[p],
               "log_likelihood": round(float(anomaly[i]), 4),
               "anomaly": bool(anomaly[i] < model.anomaly_threshold),
               "anomaly_threshold": round(model.anomaly_threshold, 4)}
        echo_json(res) if as_json else click.echo(
            f"job {job_id}: profile {p} ({res['name']}){'; an anomaly' if res['anomaly'] else ''}")
        return
    res = analysis.profiles_summary(a, viewer)
    echo_json(res) if as_json else click.echo(format_profiles(res))


def _drift(app, store, b, opts, cluster, record):
    import numpy as np

    from ..behaviour import drift as dr
    from ..behaviour.profiles import fit_profiles
    ends = b.end_time[np.isfinite(b.end_time)]
    now = float(ends.max()) if ends.size else time.time()     # the data's now: its newest end
    res = dr.feature_drift(b.X, b.names, b.end_time, now, recent_days=opts.drift_days,
                           train_days=opts.train_days, threshold=opts.drift_threshold,
                           min_count=opts.min_count)
    cut = now - opts.drift_days * dr.DAY
    train = b.end_time <= cut
    recent = b.end_time > cut
    share = None
    if train.sum() >= opts.min_count and recent.sum() >= opts.min_count:
        model = fit_profiles(b.X[train], b.names, max_k=opts.max_profiles, seed=opts.seed,
                             anomaly_percentile=opts.anomaly_percentile)
        _, ll = model.assign(b.X[recent])
        share = round(float(np.mean(ll < model.anomaly_threshold)), 4)
    written = dr.record(store, _one_cluster(b, cluster), res, time.time(), share) if record else 0
    return {"until": now, "features": [d.as_dict() for d in res], "drifted": [d.feature for d in res if d.drifted],
            "anomaly_share": share, "metrics_written": written}


def _one_cluster(b, cluster: Optional[str]) -> str:
    """The cluster drift metrics are written for: --cluster, else the only one the store holds."""
    from ..errors import NomadeError
    if cluster is not None:
        return cluster
    found = sorted(set(b.cluster.tolist()))
    if len(found) != 1:
        raise NomadeError(f"--record: the store holds {len(found)} clusters",
                          hint="choose one with --cluster NAME")
    return found[0]


def format_profiles(r) -> str:
    lines = [f"{r['jobs']} ended jobs in {r['chosen_k']} profiles (BIC); {r['anomalies']} anomalies"]
    for p in r["profiles"]:
        rate = "-" if p["failure_rate"] is None else f"{100 * p['failure_rate']:.1f} %"
        classes = ", ".join(f"{k} {v}" for k, v in p["by_class"].items())
        lines.append(f"  {p['id']:>2}  {p['name']}: {p['size']} jobs, failure rate {rate} ({classes})")
    if r["hidden_profiles"]:
        lines.append(f"  ({r['hidden_profiles']} small profiles not shown)")
    return "\n".join(lines)


def format_drift(r) -> str:
    lines = ["feature                PSI      KS  train  recent"]
    for d in r["features"]:
        psi = "-" if d["psi"] is None else f"{d['psi']:.3f}"
        ks = "-" if d["ks"] is None else f"{d['ks']:.3f}"
        mark = "  DRIFT" if d["drifted"] else ""
        lines.append(f"{d['feature']:20} {psi:>6} {ks:>7} {d['n_train']:>6} {d['n_recent']:>7}{mark}")
    if r["anomaly_share"] is not None:
        lines.append(f"anomalous recent jobs: {100 * r['anomaly_share']:.1f} %")
    if r["metrics_written"]:
        lines.append(f"wrote {r['metrics_written']} behaviour metrics")
    return "\n".join(lines)
