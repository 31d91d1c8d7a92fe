"""Sweeps: many ordinary training runs that differ in a few keys, ranked by one metric.

`plan` merges the `sweep:` block with the command line and checks every trial; `search`
chooses the trials' values (grid, random, TPE); `run` trains them through `worker`;
`results`, `display` and `plot` turn the finished trials into files, tables and sweep.png.
"""
