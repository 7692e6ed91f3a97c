"""The pytest side: the plugin, verdicts, baselines, the crash verdict and the HTML report."""
