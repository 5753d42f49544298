"""promtool unit tests for the generated rules, with expectations from cbmon's own judge.

For each baseline alert: the indicator just inside, at and just outside each boundary (what
fires is what :func:`cbmon.slo.judge.judge_value` says of the value Prometheus computes), and
the ``min_events`` guard at its edge while the alert waits out ``for``. For each burn-rate pair:
both windows above the threshold (pending, then firing), then the short one recovered, and the
short one alone above it. For the optional traffic rule: callbacks that stopped, that go on,
and a cbmon that cannot read its database.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from cbmon.domain import Level
from cbmon.rules import baseline as baseline_rules
from cbmon.rules import burn, render, selfwatch
from cbmon.rules.feeds import FEEDS, Feed, Totals, decimal_step
from cbmon.rules.generate import recorded
from cbmon.rules.model import RuleFile
from cbmon.rules.promql import duration, exact, number
from cbmon.rules.wording import Filled, baseline_text, humanize_percentage
from cbmon.slo import wording
from cbmon.slo.judge import judge_value
from cbmon.slo.objectives import Baseline, Objective

DATABASE = "app"
EVENT_TYPE = "pay"


@dataclasses.dataclass(frozen=True)
class Probe:
    job: str
    totals: Totals  # over one window
    steps: int  # samples per window


def write(directory: Path, baseline: Baseline, rules: RuleFile, *, traffic: bool) -> list[Path]:
    """The rules and their tests in ``directory``; returns the tests' paths."""
    directory.mkdir(parents=True, exist_ok=True)
    name = "alerts-traffic.yml" if traffic else "alerts.yml"
    (directory / name).write_text(render.rule_file(rules), encoding="utf-8")
    written = []
    for test_name, data in files(baseline, rules, name, traffic=traffic).items():
        path = directory / test_name
        path.write_text(render.dump(data), encoding="utf-8")
        written.append(path)
    return written


def files(
    baseline: Baseline, rules: RuleFile, rule_file: str, *, traffic: bool
) -> dict[str, dict[str, Any]]:
    order = [group.name for group in rules.groups]
    if traffic:
        return {"traffic.test.yml": _file(rule_file, order, 60, [_traffic_case(baseline)])}
    made = {"baseline.test.yml": _baseline_file(baseline, rules, rule_file, order)}
    for burn_ in _burn_files(baseline, rule_file, order):
        made.update(burn_)
    return made


def _file(rule_file: str, order: list[str], interval: float, tests: list[Any]) -> dict[str, Any]:
    return {
        "rule_files": [rule_file],
        "evaluation_interval": duration(interval),
        "group_eval_order": order,
        "tests": tests,
    }


# -- series -----------------------------------------------------------------------------------


def _labels(job: str, own: str, per_event_type: bool, event_type: str = EVENT_TYPE) -> str:
    parts = [f'job="{job}"', 'instance="a:9863"', f'database="{DATABASE}"']
    if per_event_type:
        parts.append(f'event_type="{event_type}"')
    if own:
        parts.append(own)
    return "{" + ",".join(parts) + "}"


def spread(total: int, steps: int) -> list[int]:
    """``total`` over ``steps`` increments, the larger ones last: any ``steps`` consecutive
    increments of the repeated pattern sum to ``total``, and fewer of the first to less."""
    q, r = divmod(total, steps)
    return [q] * (steps - r) + [q + 1] * r


def _values(increments: Sequence[int], count: int) -> str:
    """A counter from 0 growing by the repeated ``increments``, ``count`` samples."""
    value, values = 0, ["0"]
    for i in range(count - 1):
        value += increments[i % len(increments)]
        values.append(str(value))
    return " ".join(values)


def _series(probe: Probe, feed: Feed, samples: int) -> list[dict[str, str]]:
    found = []
    for (metric, own), total in sorted(probe.totals.items()):
        labels = _labels(probe.job, own, feed.per_event_type)
        if feed.gauge:
            values = f"{total}+0x{samples - 1}"
        else:
            values = _values(spread(total, probe.steps), samples)
        found.append({"series": f"{metric}{labels}", "values": values})
    return found


# -- baseline ---------------------------------------------------------------------------------


def _interval(*seconds: float) -> float:
    whole = [round(s) for s in seconds if s > 0]
    return float(math.gcd(*whole)) if whole else 60.0


def _alert(
    objective: Objective, level: Level, value: float, job: str, baseline: Baseline, feed: Feed
) -> list[dict[str, Any]]:
    """The alerts one series fires: per event type and overall, or the queue's one."""
    scopes = [EVENT_TYPE, ""] if feed.per_event_type else [""]
    alerts = []
    for event_type in scopes:
        labels = {"severity": level.label, "slo": objective.slo, "job": job, "database": DATABASE}
        if event_type:
            labels["event_type"] = event_type
        text = baseline_text(
            objective, level, baseline, Filled.of(objective.unit, value, event_type)
        )
        alerts.append({"exp_labels": labels, "exp_annotations": dict(text)})
    return alerts


def _levels(objective: Objective, baseline: Baseline) -> list[Level]:
    limits = baseline.limit(objective.slo)
    assert limits is not None
    return [Level.WARNING] if limits.alert is None else [Level.WARNING, Level.CRITICAL]


def _fired(objective: Objective, value: float, baseline: Baseline) -> list[Level]:
    """The baseline alerts ``value`` fires: the warning from its boundary on, and the critical
    one beyond the alert boundary, as the judge says."""
    level = judge_value(objective, value, baseline.limit(objective.slo))
    return [own for own in _levels(objective, baseline) if level >= own]


def _probes(objective: Objective, feed: Feed, baseline: Baseline, steps: int) -> list[Probe]:
    limits = baseline.limit(objective.slo)
    assert limits is not None
    enough = max(baseline.min_events, 1)
    probes = []
    for threshold in (limits.normal, limits.alert):
        if threshold is None:
            continue
        at = exact(threshold)
        step = feed.unit_step(at)
        for name, value in (("below", at - step), ("at", at), ("above", at + step)):
            if value < 0 or (objective.unit == "ratio" and value > 1):
                continue
            job = f"{name}-{threshold:g}"
            probes.append(Probe(job, feed.totals(value, enough, baseline), steps))
    return probes


def _baseline_case(objective: Objective, baseline: Baseline) -> list[dict[str, Any]]:
    feed = FEEDS[objective.slo]
    window, hold = baseline.window, baseline.for_
    interval = _interval(window, hold, 60)
    steps = round(window / interval)
    full = window + hold  # every window full and exact since ``window``, for ``for``
    samples = round(full / interval) + 2
    assert objective.alertname is not None
    cases = []
    probes = _probes(objective, feed, baseline, steps)
    expected = []
    for probe in probes:
        value = feed.value(probe.totals, baseline)
        for level in _fired(objective, value, baseline):
            expected += _alert(objective, level, value, probe.job, baseline, feed)
    series = [s for probe in probes for s in _series(probe, feed, samples)]
    cases.append(
        {
            "interval": duration(interval),
            "input_series": series,
            "alert_rule_test": [
                {
                    "alertname": objective.alertname,
                    "eval_time": duration(full),
                    "exp_alerts": expected,
                }
            ],
        }
    )
    if feed.events is not None:
        cases.append(_guard_case(objective, feed, baseline, interval, steps, samples))
    return cases


def _guard_case(
    objective: Objective,
    feed: Feed,
    baseline: Baseline,
    interval: float,
    steps: int,
    samples: int,
) -> dict[str, Any]:
    """The value beyond every threshold, on exactly ``min_events`` events (it fires once it
    has waited out ``for``) and on one fewer (it never does)."""
    assert objective.alertname is not None
    assert feed.events is not None
    enough = max(baseline.min_events, 1)
    worst = feed.worst(objective.better == "higher")
    series, expected = [], []
    for events in (enough, enough - 1):
        totals = feed.totals(worst, enough, baseline)
        scale = Fraction(events, feed.events(totals))
        totals = {key: int(total * scale) for key, total in totals.items()}
        probe = Probe(f"events-{events}", totals, steps)
        series += _series(probe, feed, samples)
        if events >= enough and feed.events(totals) == events:
            value = feed.value(totals, baseline)
            for level in _fired(objective, value, baseline):
                expected += _alert(objective, level, value, probe.job, baseline, feed)
    window, hold = baseline.window, baseline.for_
    tests: list[dict[str, Any]] = []
    if hold >= interval:  # still pending one evaluation before ``for`` has passed
        tests.append(
            {
                "alertname": objective.alertname,
                "eval_time": duration(window + hold - interval),
                "exp_alerts": [],
            }
        )
    tests.append(
        {
            "alertname": objective.alertname,
            "eval_time": duration(window + hold),
            "exp_alerts": expected,
        }
    )
    return {"interval": duration(interval), "input_series": series, "alert_rule_test": tests}


def _baseline_file(
    baseline: Baseline, rules: RuleFile, rule_file: str, order: list[str]
) -> dict[str, Any]:
    names = recorded(rules.groups)
    tests = []
    for check in baseline_rules.checks(baseline, names):
        if check.level is Level.WARNING:  # one case per indicator covers both levels
            tests += _baseline_case(check.objective, baseline)
    interval = _interval(baseline.window, baseline.for_, 60)
    return _file(rule_file, order, interval, tests)


# -- burn rates -------------------------------------------------------------------------------


def _burn_files(
    baseline: Baseline, rule_file: str, order: list[str]
) -> Iterable[dict[str, dict[str, Any]]]:
    for found in burn.burns(baseline):
        pair = found.pair
        interval = _interval(pair.long, pair.short, pair.for_)
        scope = found.event_type or "default"
        name = f"burn-{found.slo}-{scope}-{duration(pair.long)}.test.yml"
        yield {name: _file(rule_file, order, interval, [_burn_case(found, baseline, interval)])}


def _burn_case(found: burn.Burn, baseline: Baseline, interval: float) -> dict[str, Any]:
    """Job ``burning``: bad at ``high`` from the start until ``long + for``, then at half the
    threshold: pending at ``for``, firing at ``long + for``, recovered once its short window
    is below. Job ``short-only``: bad at ``short_high`` for only the last short window, which
    keeps the long window below the threshold. Jobs ``at-threshold`` and ``above-threshold``:
    bad at exactly the threshold (never fires: the rule says above) and one step above it.
    What fires at each time, of every pair of the objective, is worked out from the counters
    as Prometheus evaluates the rules."""
    pair = found.pair
    threshold = printed(found)
    event_type = found.event_type or _free_event_type(baseline)
    long_steps, short_steps = round(pair.long / interval), round(pair.short / interval)
    for_steps = round(pair.for_ / interval)
    high = min(Fraction(1), (threshold + 1) / 2)
    ceiling = min(Fraction(1), threshold * long_steps / short_steps)
    short_high = (threshold + ceiling) / 2
    assert threshold < short_high < ceiling  # the short window alone is above it
    above = threshold + decimal_step(threshold)
    low = threshold / 2
    # Job ``long-at-threshold`` repeats a pattern as long as the long window: low, then high
    # for the short window and ``for`` and one step, so every full long window is exactly at
    # the threshold while the short one is above it for longer than ``for``.
    hot = short_steps + for_steps + 1
    assert hot < long_steps
    peak = (threshold + min(Fraction(1), threshold * long_steps / hot)) / 2
    base = (threshold * long_steps - peak * hot) / (long_steps - hot)
    ratios = (high, short_high, threshold, above, low, peak, base)
    n = math.lcm(*(r.denominator for r in ratios))
    n *= max(1, math.ceil(100 / n))
    stop = long_steps + for_steps  # the burning job's burn ends here
    end = stop + short_steps  # the burning job's short window is below again
    total = max(end + short_steps, 2 * long_steps)  # the short-only job's burn is the last
    period = [int(base * n)] * (long_steps - hot) + [int(peak * n)] * hot
    jobs = {
        "burning": [int(high * n)] * stop + [int(low * n)] * (total - stop),
        "short-only": [0] * (total - short_steps) + [int(short_high * n)] * short_steps,
        "at-threshold": [int(threshold * n)] * total,
        "above-threshold": [int(above * n)] * total,
        "long-at-threshold": [period[i % long_steps] for i in range(total)],
    }
    series: list[dict[str, str]] = []
    for job, bad in jobs.items():
        series += _burn_series(found, job, event_type, n, bad, total)
    alertname = burn.ALERT_NAMES[found.slo]
    rivals = [b for b in burn.burns(baseline) if b.slo == found.slo]
    tests = [
        {
            "alertname": alertname,
            "eval_time": duration(at * interval),
            "exp_alerts": _burn_expected(rivals, jobs, n, event_type, at, interval),
        }
        for at in (for_steps, stop, end, total)
    ]
    selector = f'{{job="short-only",event_type="{event_type}"}}'
    short = burn.bad_ratio(found.slo, found.target, duration(pair.short), selector)
    labels = f'{{job="short-only",database="{DATABASE}",event_type="{event_type}"}}'
    name = short.split("{")[0] if found.slo == "success_rate" else ""
    checks = [
        {
            "expr": short,
            "eval_time": duration(total * interval),
            "exp_samples": [{"labels": name + labels, "value": float(short_high)}],
        }
    ]
    return {
        "interval": duration(interval),
        "input_series": series,
        "alert_rule_test": tests,
        "promql_expr_test": checks,
    }


def printed(found: burn.Burn) -> Fraction:
    """The threshold as the rule writes it (rounded where its decimals do not end)."""
    return Fraction(number(found.threshold))


def _ratio(bad: list[int], n: int, at: int, window: float, interval: float) -> Fraction | None:
    """The share of bad events over ``window`` at step ``at``, as Prometheus computes it from
    samples every ``interval``: none without two samples in the window or without events."""
    if window < interval or at == 0:
        return None
    steps = window / interval
    if steps != int(steps):
        raise ValueError(f"window {duration(window)} is not a multiple of {duration(interval)}")
    start = max(0, at - int(steps))
    events = n * (at - start)
    return Fraction(sum(bad[start:at]), events) if events else None


def _burn_expected(
    rivals: list[burn.Burn],
    jobs: Mapping[str, list[int]],
    n: int,
    event_type: str,
    at: int,
    interval: float,
) -> list[dict[str, Any]]:
    """The alerts firing at step ``at``: each pair's condition held since at least its
    ``for`` ago, on each level (the event type, overall) the pair's selector keeps."""
    alerts = []
    for rule in rivals:
        for level in (event_type, ""):
            if rule.event_type is not None and level != rule.event_type:
                continue
            if rule.event_type is None and level in rule.excluded:
                continue
            for job, bad in jobs.items():
                since: int | None = None
                value: Fraction | None = None
                for step in range(at + 1):
                    long = _ratio(bad, n, step, rule.pair.long, interval)
                    short = _ratio(bad, n, step, rule.pair.short, interval)
                    held = long is not None and short is not None
                    limit = printed(rule)
                    if held and long > limit and short > limit:  # type: ignore[operator]
                        since = step if since is None else since
                        value = long
                    else:
                        since = None
                if since is None or value is None or (at - since) * interval < rule.pair.for_:
                    continue
                alerts.append(_burn_alert(rule, job, level, float(value)))
    return alerts


def _burn_series(
    found: burn.Burn, job: str, event_type: str, n: int, bad: list[int], total: int
) -> list[dict[str, str]]:
    labels = _labels(job, "", True, event_type)
    steps = [n] * total
    if found.slo == "success_rate":
        names = {"cbmon_callback_attempts_total": steps, "cbmon_callback_failures_total": bad}
    else:
        bound = f'le="{float(found.target.threshold or 0)!r}"'
        good = [a - b for a, b in zip(steps, bad, strict=True)]
        bucket = _labels(job, bound, True, event_type)
        return [
            {"series": f"cbmon_callback_duration_seconds_count{labels}", "values": _run(steps)},
            {"series": f"cbmon_callback_duration_seconds_bucket{bucket}", "values": _run(good)},
        ]
    return [{"series": f"{name}{labels}", "values": _run(inc)} for name, inc in names.items()]


def _run(increments: list[int]) -> str:
    """A counter from 0 by ``increments``, in promtool's ``a+bxn`` runs (one per stretch of
    equal increments)."""
    parts: list[str] = []
    value, i = 0, 0
    while i < len(increments):
        j = i
        while j < len(increments) and increments[j] == increments[i]:
            j += 1
        step, count = increments[i], j - i
        if not parts:
            parts.append(f"0+{step}x{count}")
            value = step * count
        else:
            start = value + step
            parts.append(f"{start}+{step}x{count - 1}")
            value = start + step * (count - 1)
        i = j
    return " ".join(parts)


def _explicit(increments: list[int]) -> str:
    value, values = 0, ["0"]
    for inc in increments:
        value += inc
        values.append(str(value))
    return " ".join(values)


def _burn_alert(found: burn.Burn, job: str, event_type: str, value: float) -> dict[str, Any]:
    labels = {
        "severity": found.pair.severity,
        "slo": found.slo,
        "long_window": duration(found.pair.long),
        "short_window": duration(found.pair.short),
        "job": job,
        "database": DATABASE,
    }
    if event_type:
        labels["event_type"] = event_type
    text = burn.text(found, humanize_percentage(value), wording.scope(event_type))
    return {"exp_labels": labels, "exp_annotations": dict(text)}


def _free_event_type(baseline: Baseline) -> str:
    name = EVENT_TYPE
    while name in baseline.event_targets:
        name += "-default"
    return name


# -- traffic ----------------------------------------------------------------------------------


def _traffic_case(baseline: Baseline) -> dict[str, Any]:
    group = selfwatch.traffic(baseline)
    [rule] = group.rules
    after, hold = selfwatch.traffic_after(baseline), selfwatch.TRAFFIC_FOR
    interval = _interval(after, hold, 60)
    stop = round(600 / interval)  # attempts stop after 10m
    quiet = round(after / interval) + round(hold / interval)
    samples = stop + quiet + 2
    grow = [5] * stop + [0] * samples
    series = []
    for job, increments, up in (
        ("stopped", grow, 1),
        ("busy", [5] * samples, 1),
        ("down", [0] * samples, 0),
    ):
        labels = _labels(job, "", False)
        series.append(
            {
                "series": f"cbmon_callback_attempts_total{_labels(job, '', True)}",
                "values": _explicit(increments[: samples - 1]),
            }
        )
        series.append({"series": f"cbmon_database_up{labels}", "values": f"{up}+0x{samples - 1}"})
    fired_at = stop + quiet
    annotations = {
        k: v.replace("{{ $labels.job }}", "stopped") for k, v in rule.annotations.items()
    }
    alert = {
        "exp_labels": {
            **dict(rule.labels),
            "job": "stopped",
            "database": DATABASE,
        },
        "exp_annotations": annotations,
    }
    assert rule.alert is not None
    return {
        "interval": duration(interval),
        "input_series": series,
        "alert_rule_test": [
            {
                "alertname": rule.alert,
                "eval_time": duration((fired_at - 1) * interval),
                "exp_alerts": [],
            },
            {
                "alertname": rule.alert,
                "eval_time": duration(fired_at * interval),
                "exp_alerts": [alert],
            },
        ],
    }
