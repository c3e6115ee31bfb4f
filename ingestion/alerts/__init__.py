"""Alerts people act on: rules from site.yaml (`rules`), state in ops.alerts (`store`), live evaluation on
each stream micro-batch (`live`), the day's anomalies after the marts (`batch`), notifications (`channels`)
and their exactly-once ledger (`deliver`). No Dagster here: the CLI and orchestration call these."""
