"""``cbmon rules``: the Prometheus rules and their promtool unit tests, generated from the one
table of objectives (:mod:`cbmon.slo.objectives`) and a :class:`~cbmon.slo.objectives.Baseline`.

Pure up to :mod:`cbmon.rules.render`, the only module that writes YAML: the other modules turn
plain values into :class:`~cbmon.rules.model.Group` values and dictionaries.
"""
