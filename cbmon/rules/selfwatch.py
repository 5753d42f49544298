"""Alerts on cbmon itself, and the optional rule for callbacks that stopped.

When cbmon is down or cannot read the database every callback alert goes quiet, so these say
so. Their wording is written here, not in the objectives table: they judge cbmon, not
callbacks.
"""

from __future__ import annotations

from cbmon.rules.model import Group, Rule
from cbmon.rules.promql import by, duration
from cbmon.slo.objectives import TRAFFIC, Baseline

# When slo.traffic_absent_after is 0s (cbmon itself does not judge it), the optional rule
# still needs a span: callbacks that stop for this long.
TRAFFIC_DEFAULT = 600.0
# A cbmon that just started has its counters from the first attempt it reads, and
# increase() needs two scrapes of them.
TRAFFIC_FOR = 120.0

SELF = Group(
    "cbmon-self",
    (
        Rule(
            alert="CbmonTargetDown",
            expr='up{job=~".*cbmon.*"} == 0',
            for_="2m",
            labels={"severity": "critical"},
            annotations={
                "summary": "Prometheus cannot scrape cbmon at {{ $labels.instance }}",
                "description": (
                    "The scrape of {{ $labels.instance }} (job {{ $labels.job }}) has failed for "
                    "2m, so callback alerts for it are blind. Check that the cbmon process or "
                    "container runs (logs, restarts, OOM kills), that it listens on that "
                    "address, and `curl http://{{ $labels.instance }}/metrics` from the "
                    "Prometheus host."
                ),
            },
        ),
        Rule(
            alert="CbmonTargetAbsent",
            expr='absent(up{job=~".*cbmon.*"})',
            for_="5m",
            labels={"severity": "critical"},
            annotations={
                "summary": "Prometheus has no cbmon target",
                "description": (
                    'No scrape target with a job name containing "cbmon" has existed for 5m, '
                    "so no callback alert can fire. Check the scrape configuration and service "
                    "discovery (Status > Targets in Prometheus); the job name must contain "
                    '"cbmon" for these rules.'
                ),
            },
        ),
        Rule(
            alert="CbmonDatabaseDown",
            expr="cbmon_database_up == 0",
            for_="1m",
            labels={"severity": "critical"},
            annotations={
                "summary": (
                    "cbmon at {{ $labels.instance }} cannot read the callback database "
                    "{{ $labels.database }}"
                ),
                "description": (
                    "The database did not answer cbmon's last poll (job {{ $labels.job }}), "
                    "so its callback metrics stand still at their last values. Check that "
                    "PostgreSQL is up and reachable from cbmon, the DSN, and cbmon's log for "
                    "the error; `cbmon check` with the same --dsn and --config shows it in one "
                    "line."
                ),
            },
        ),
        Rule(
            alert="CbmonPollsStale",
            expr="time() - cbmon_last_poll_timestamp_seconds > 120",
            for_="1m",
            labels={"severity": "critical"},
            annotations={
                "summary": (
                    "cbmon at {{ $labels.instance }} has not polled for "
                    "{{ $value | humanizeDuration }}"
                ),
                "description": (
                    "The last successful poll of cbmon at {{ $labels.instance }} (job "
                    "{{ $labels.job }}) was {{ $value | humanizeDuration }} ago (alert above "
                    "2m), so its callback metrics are stale. If CbmonDatabaseDown fires too, "
                    "fix the database first. Otherwise the database answers but refuses the "
                    "polls, and cbmon_poll_errors_total{reason} says why (timeout, permission, "
                    "schema, data, query; the log has the error), or the poller is stuck: look "
                    "at cbmon's log and cbmon_poll_duration_seconds, and restart it."
                ),
            },
        ),
        Rule(
            alert="CbmonConfigReloadFailed",
            expr="max_over_time(cbmon_config_last_reload_successful[5m]) == 0",
            for_="10m",
            labels={"severity": "warning"},
            annotations={
                "summary": "cbmon at {{ $labels.instance }} could not reload its configuration",
                "description": (
                    "The last configuration reload of cbmon at {{ $labels.instance }} (job "
                    "{{ $labels.job }}) failed, so it still runs with the configuration it "
                    "had: the change is not in force, and a restart would stop on the same "
                    'file. Its log says in one line what is wrong ("configuration not '
                    'reloaded"); `cbmon config check` on the file says it too.'
                ),
            },
        ),
    ),
    "cbmon watching itself: when it is down or cannot read the database, every alert above\n"
    "goes quiet, so these say so.",
)


def traffic_after(baseline: Baseline) -> float:
    return baseline.traffic_absent_after or TRAFFIC_DEFAULT


def traffic(baseline: Baseline) -> Group:
    """No callback attempt counted for ``slo.traffic_absent_after`` (10m when cbmon does not
    judge it) by a cbmon that reads its database (CbmonDatabaseDown covers the other case)."""
    after = duration(traffic_after(baseline))
    assert TRAFFIC.alertname is not None
    phrase = TRAFFIC.measured.format(value=after)
    fields = {"value": after, "normal": after}
    return Group(
        "cbmon-traffic",
        (
            Rule(
                alert=TRAFFIC.alertname,
                expr=(
                    f"max by ({by()}) (cbmon_database_up) == 1\n"
                    f"unless on ({by()})\n"
                    f"max by ({by()}) (increase(cbmon_callback_attempts_total[{after}])) > 0"
                ),
                for_=duration(TRAFFIC_FOR),
                labels={"severity": "warning", "slo": TRAFFIC.slo},
                annotations={
                    "summary": f"{phrase} (job {{{{ $labels.job }}}})",
                    "description": f"{TRAFFIC.explained.format(**fields)} {TRAFFIC.advice}",
                },
            ),
        ),
    )
