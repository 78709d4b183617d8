"""optscan's benchmarks: `python -m bench` (or `just bench`) prints one table per benchmark.

Each benchmark is a module with `run(smoke: bool) -> list[Table]`, listed in BENCHMARKS below;
`--smoke` runs tiny versions in seconds (CI runs those so that the benchmarks do not rot).
A listed module that does not exist yet is reported as not yet available.
"""

from __future__ import annotations

# (key, module, title): the order of the printed tables.
BENCHMARKS = (
    ("scan", "bench.scan", "(1) Scan wall time"),
    ("analytics", "bench.analytics", "(2) Analytics throughput"),
    ("pipeline", "bench.pipeline", "(2b) Chain pipeline"),
    ("sse", "bench.sse", "(3) SSE fan-out"),
    ("index", "bench.index_page", "(4) Index page under load"),
    ("scale", "bench.scale", "(5) Scan scale"),
)
