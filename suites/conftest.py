# The fixtures (harness_profile, prepared_run, recipe_run, record, run_artifacts, live, baseline,
# thresholds, ...) come from the yoda-harness pytest plugin (harness/checks/plugin.py).
