"""The offline simulator: replay a labeled dataset through the real scorer, queue, labeling service and retrainer.

- :mod:`~activestream.simulation.datasets`: labeled datasets (digits, CSV / Parquet / NPZ files);
- :mod:`~activestream.simulation.campaign`: one (strategy, seed) campaign and its scoring;
- :mod:`~activestream.simulation.engine`: every campaign, in parallel, and the JSON report;
- :mod:`~activestream.simulation.curves`: learning-curve maths (labels to target, AUC, savings);
- :mod:`~activestream.simulation.summary`, :mod:`~activestream.simulation.plot`: the report as text and as a PNG.

Used by ``activestream demo`` / ``simulate`` and the benchmarks; no service imports it.
"""
