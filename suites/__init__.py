"""The harness's suites: they assert on what the recipe run produced (the fixtures: docs/fixtures.md).

Here `pytest suites`; installed, from any directory, `pytest --pyargs harness.suites`.
"""
