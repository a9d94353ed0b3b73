"""Reproducible measurements of keras_scan (see benchmarks/README.md).

`python benchmarks/run.py --profile smoke|cpu|gpu` writes
`benchmarks/results/<profile>/results.json`, `REPORT.md` and plots.
"""
