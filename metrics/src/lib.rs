//! Prometheus helpers shared by the monitor, the keepers and the proxy:
//! metric families, label enums with bounded cardinality and the exposition
//! endpoint. Filled by the metrics issue.
