# The plugin is also the `pytest11` entry point named "harness.checks.plugin"; naming the same module
# here lets `pytest suites` work from a checkout that was not pip-installed, without
# registering it twice.
pytest_plugins = ["harness.checks.plugin"]
