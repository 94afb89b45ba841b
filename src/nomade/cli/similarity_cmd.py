"""``nomade similarity``: the similarity network of how jobs ran (summary and hotspots), one
job's similar jobs (``--find-similar``), and the dashboard's export (``--export``)."""

from pathlib import Path
from typing import Optional

import click

from .context import DIRECT_HELP, AppContext, echo_json, pass_app


def current_caller():
    """Who runs this command (tests replace this one function)."""
    from ..caller_access import local_caller
    return local_caller()


def viewer_and_options(app: AppContext, threshold: Optional[float] = None, similarity: Optional[str] = None):
    """(viewer: None for root/admins else the caller, analysis Options from the configuration)."""
    from ..behaviour.analysis import Options
    from ..whyservice.access import is_admin
    caller = current_caller()
    viewer = None if is_admin(caller, app.config.get("privacy.admin_group")) else caller
    opts = Options.from_config(app.config)
    if threshold is not None:
        opts.threshold = threshold
    if similarity is not None:
        opts.metric = similarity
    return viewer, opts


@click.command()
@click.option("--cluster", default=None, metavar="NAME", help="Only jobs of this cluster.")
@click.option("--find-similar", "find", default=None, metavar="JOBID",
              help="The ended jobs most similar to JOBID (yours, or any job for admins).")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(min=1, max=1000),
              help="How many similar jobs --find-similar lists.")
@click.option("--export", "export_path", default=None, metavar="FILE.json",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Write the network for the dashboard (nodes, edges, zones, profiles) to FILE.json.")
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="At most this many nodes in --export (a seeded sample, your own jobs first).")
@click.option("--threshold", default=None, type=click.FloatRange(-1.0, 1.0),
              help="Similarity threshold of an edge (default: behaviour.similarity_threshold).")
@click.option("--similarity", default=None, type=click.Choice(["cosine", "simpson"]),
              help="cosine of z-scores, or Simpson's index on presence/absence (default: behaviour.similarity).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--direct/--service", default=None,
              help="--find-similar: " + DIRECT_HELP[0].lower() + DIRECT_HELP[1:])
@pass_app
def similarity(app: AppContext, cluster: Optional[str], find: Optional[str], k: int,
               export_path: Optional[Path], limit: Optional[int], threshold: Optional[float],
               similarity: Optional[str], as_json: bool, direct: Optional[bool]) -> None:
    """Network summary of ended jobs: failure assortativity with its permutation test,
    neighbourhood purity, regions and failure hotspots (feature ranges with a failure rate
    significantly above the base rate).

    A user sees their own jobs' details and aggregates over at least behaviour.min_count jobs;
    root and members of privacy.admin_group see everything.
    """
    from ..whyservice.client import reads_store
    if find is not None and not reads_store(app.config, direct):
        _find_similar_service(app, find, cluster, k, as_json)
        return
    from ..behaviour import one_blas_thread
    one_blas_thread()
    if find is not None:
        _find_similar(app, find, cluster, k, as_json)
        return
    from ..behaviour import analysis, vectors
    viewer, opts = viewer_and_options(app, threshold, similarity)
    with app.store(readonly=True) as store:
        b = vectors.load(store, cluster)
    if export_path is not None:
        import json

        from ..behaviour.export import export_analysis
        from ..private_files import write_atomic
        opts.permutations = 0
        data = export_analysis(analysis.analyse(b, opts), viewer=viewer, limit=limit, cluster=cluster)
        write_atomic(export_path, json.dumps(data, allow_nan=False, separators=(",", ":")).encode())
        summary = {"path": str(export_path), "nodes": len(data["nodes"]), "edges": len(data["edges"])}
        echo_json(summary) if as_json else click.echo(
            f"wrote {summary['nodes']} jobs and {summary['edges']} edges to {export_path}")
        return
    res = analysis.network_summary(analysis.analyse(b, opts, with_profiles=False))
    echo_json(res) if as_json else click.echo(format_summary(res))


def _find_similar_service(app: AppContext, job_id: str, cluster: Optional[str], k: int, as_json: bool) -> None:
    """A user's look-up: the nomade-why service reads the private store, applies the same rule
    and keeps the index warm in memory."""
    from ..whyservice.client import ask
    res = ask(Path(app.config.get("privacy.socket")), job_id, cluster or "", op="similar", extra={"k": k})
    echo_json(res) if as_json else click.echo(format_similar(res))


def _find_similar(app: AppContext, job_id: str, cluster: Optional[str], k: int, as_json: bool) -> None:
    """The look-up from the cache (behaviour.cache), importing only what it needs (not the
    analysis and its profiles): the command's own time stays near numpy's import."""
    from ..behaviour.cache import similarity_lookup
    from ..behaviour.similar import find_similar
    from ..errors import ConfigError
    from ..whyservice.access import is_admin
    group = app.config.get("privacy.admin_group")
    caller = current_caller()
    viewer = None if is_admin(caller, group) else caller
    min_count = app.config.get("behaviour.min_count")
    if min_count < 1:
        raise ConfigError("behaviour.min_count must be at least 1")
    with app.store(readonly=True) as store:
        b, index, _ = similarity_lookup(store, app.config.data_dir / "cache", cluster)
    res = find_similar(b, index, job_id, viewer=viewer, admin_group=group, cluster=cluster, k=k,
                       min_count=min_count)
    echo_json(res) if as_json else click.echo(format_similar(res))


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def format_summary(s) -> str:
    lines = [f"{s['jobs']} ended jobs, {s['labelled']} with a success/failure outcome, base failure "
             f"rate {_pct(s['base_failure_rate'])}",
             f"network: {s['similarity']} similarity >= {s['threshold']}, {s['neighbours']} neighbours "
             f"({s['search']} search): {s['edges']} edges, mean degree {s['mean_degree']}, "
             f"{s['isolated_jobs']} isolated jobs, {s['regions']} regions (largest {s['largest_region']})",
             f"failure assortativity {s['assortativity']} (chance {s['assortativity_null_mean']}; "
             f"permutation p = {s['assortativity_p_value']}, {s['permutations']} shuffles)",
             f"neighbourhood purity {s['purity']}; failed jobs' neighbours failed: {_pct(s['failure_purity'])}"]
    if s["hotspots"]:
        lines.append("hotspots (feature range: failure rate, 95 % interval adjusted for the ranges tried):")
        for h in s["hotspots"]:
            lines.append(f"  {h['kind']:6} {h['label']} {h['range']}: "
                         f"{_pct(h['failure_rate'])} [{_pct(h['ci'][0])}, {_pct(h['ci'][1])}] "
                         f"of {h['n']} jobs (base {_pct(h['base_rate'])})")
    else:
        lines.append("no hotspot: no feature range fails significantly more often than the base rate")
    return "\n".join(lines)


def format_similar(r) -> str:
    lines = [f"job {r['job_id']} ({r['outcome']}, health {r['health']})"]
    for s in r["similar"]:
        who = f" {s['user']}" if s.get("user") else ""
        lines.append(f"  {s['job_id']:>12}{who}  {s['outcome'] or '-':16} similarity {s['similarity']}")
    if r["hidden"]:
        lines.append(f"  ({r['hidden']} similar jobs of other users not shown)")
    h = r["neighbourhood"]
    if "failure_rate" in h:
        lines.append(f"its {h['jobs']} nearest jobs: {_pct(h['failure_rate'])} failed "
                     f"[{_pct(h['ci'][0])}, {_pct(h['ci'][1])}]")
    for d in r["differences"]:
        lines.append(f"  {d['label']}: this job {d['job']}, its successful neighbours {d['successful_neighbours']}")
    return "\n".join(lines)
