"""Job behaviour analysis (docs/behaviour.md): behaviour vectors of ended jobs, their similarity
network with failure hotspots, job profiles, recommendations and drift. Runtime code: stdlib and
numpy only, Python 3.9."""
