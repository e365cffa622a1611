//! [`Builder`]: defines metrics under one prefix in one registry.
//!
//! Metric definitions are constants of the program (names, help texts,
//! label names, buckets): the `prometheus` crate rejects only malformed or
//! duplicate ones, which is a bug, so the builder panics with the metric's
//! name instead of threading an error that can never happen at run time
//! through every caller. Each component's unit tests build its metrics, so
//! such a bug fails the tests.

use prometheus::core::Collector;
use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

use crate::StateGauge;

/// Metrics of one component: every name gets the component's prefix.
pub struct Builder {
    registry: Registry,
    namespace: &'static str,
}

impl Builder {
    /// A new registry whose metrics are all named `<namespace>_<name>`.
    pub fn new(namespace: &'static str) -> Builder {
        Builder {
            registry: Registry::new(),
            namespace,
        }
    }

    /// The registry the metrics are registered in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The prefix of every name.
    pub fn namespace(&self) -> &'static str {
        self.namespace
    }

    fn opts(&self, name: &str, help: &str) -> Opts {
        Opts::new(name, help).namespace(self.namespace)
    }

    #[track_caller]
    fn register<C: Collector + Clone + 'static>(
        &self,
        name: &str,
        metric: Result<C, prometheus::Error>,
    ) -> C {
        let metric =
            metric.unwrap_or_else(|e| panic!("invalid metric {}_{name}: {e}", self.namespace));
        if let Err(e) = self.registry.register(Box::new(metric.clone())) {
            panic!("cannot register metric {}_{name}: {e}", self.namespace);
        }
        metric
    }

    /// An integer gauge without labels.
    #[track_caller]
    pub fn int_gauge(&self, name: &str, help: &str) -> IntGauge {
        self.register(name, IntGauge::with_opts(self.opts(name, help)))
    }

    /// A floating-point gauge without labels.
    #[track_caller]
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.register(name, Gauge::with_opts(self.opts(name, help)))
    }

    /// Integer gauges by `labels`.
    #[track_caller]
    pub fn int_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.register(name, IntGaugeVec::new(self.opts(name, help), labels))
    }

    /// Floating-point gauges by `labels`.
    #[track_caller]
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.register(name, GaugeVec::new(self.opts(name, help), labels))
    }

    /// An integer counter without labels (the name ends in `_total`).
    #[track_caller]
    pub fn int_counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(name, IntCounter::with_opts(self.opts(name, help)))
    }

    /// Integer counters by `labels` (the name ends in `_total`).
    #[track_caller]
    pub fn int_counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(name, IntCounterVec::new(self.opts(name, help), labels))
    }

    /// Histograms by `labels` with the given bucket upper bounds.
    #[track_caller]
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: Vec<f64>,
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help)
            .namespace(self.namespace)
            .buckets(buckets);
        self.register(name, HistogramVec::new(opts, labels))
    }

    /// One 0/1 gauge per value of `states`, by `labels` plus `state`.
    #[track_caller]
    pub fn state_gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        states: &[&'static str],
    ) -> StateGauge {
        let mut all = labels.to_vec();
        all.push("state");
        StateGauge::new(self.int_gauge_vec(name, help, &all), states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_the_prefix() {
        let b = Builder::new("pgaftest");
        b.int_gauge("up", "Whether it is up.").set(1);
        b.int_counter_vec("events_total", "Events.", &["group"])
            .with_label_values(&["0"])
            .inc_by(3);
        let names: Vec<String> = b
            .registry()
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert_eq!(names, ["pgaftest_events_total", "pgaftest_up"]);
    }

    #[test]
    #[should_panic(expected = "cannot register metric pgaftest_up")]
    fn a_duplicate_name_is_a_bug() {
        let b = Builder::new("pgaftest");
        b.int_gauge("up", "Whether it is up.");
        b.int_gauge("up", "Again.");
    }
}
