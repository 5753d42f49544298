"""``cbmon rules``: the Prometheus rules (and their promtool tests) for a configuration."""

from __future__ import annotations

from pathlib import Path

import click

from cbmon.cli.options import build_config, config_option, format_option
from cbmon.rules import generate, render, unittests

FORMATS = ["prometheus", "prometheus-operator"]


@click.command()
@config_option
@format_option(
    FORMATS,
    "prometheus",
    help_text="A rule file (rule_files:), or a monitoring.coreos.com/v1 PrometheusRule",
)
@click.option(
    "--traffic",
    is_flag=True,
    help="The optional rule for callbacks that stopped (alerts-traffic.yml) instead of the "
    "others; it fires after slo.traffic_absent_after, or 10m when that is 0s.",
)
@click.option(
    "--tests",
    "tests_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the rules and their promtool unit tests into this directory and print the "
    "tests' paths, for `promtool test rules $(cbmon rules --tests DIR)`.",
)
def rules(
    config_path: Path | None, output_format: str, traffic: bool, tests_dir: Path | None
) -> None:
    """Print the Prometheus rules for the configuration: recording rules, the baseline alerts
    (thresholds, window, for and min_events as cbmon judges them), error-budget burn alerts
    per objective, and alerts on cbmon itself. The shipped alerts.yml and alerts-traffic.yml
    are its output for the default configuration.

    \b
    Example:
      cbmon rules --config cbmon.yml > /etc/prometheus/rules/cbmon.yml
      promtool test rules $(cbmon rules --config cbmon.yml --tests /tmp/cbmon-rules)
    """
    if tests_dir is not None and output_format != "prometheus":
        raise click.UsageError("--tests writes a rule file for promtool: leave out --format")
    config = build_config(config_path, None)
    baseline = config.baseline
    source = "the default configuration" if config_path is None else str(config_path)
    made = (generate.traffic if traffic else generate.rules)(baseline, source)
    if tests_dir is not None:
        for path in unittests.write(tests_dir, baseline, made, traffic=traffic):
            click.echo(str(path))
        return
    if output_format == "prometheus-operator":
        click.echo(render.prometheus_rule(made), nl=False)
    else:
        click.echo(render.rule_file(made), nl=False)
