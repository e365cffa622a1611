//! [`StateGauge`]: an enumeration as a family of 0/1 gauges, the usual
//! Prometheus shape for "which state is it in" (`…{state="primary"} 1`,
//! `…{state="secondary"} 0`, …). Every allowed value is always exposed, so
//! that a change of state is a change of values, never series appearing or
//! disappearing, and `max_over_time(…{state="x"}[5m])` works.

use std::sync::Arc;

use prometheus::IntGaugeVec;

/// One gauge per allowed value of the last label (`state`).
#[derive(Clone)]
pub struct StateGauge {
    vec: IntGaugeVec,
    states: Arc<[&'static str]>,
}

impl StateGauge {
    /// Wrap `vec`, whose last label is the state, allowing `states`.
    pub fn new(vec: IntGaugeVec, states: &[&'static str]) -> StateGauge {
        StateGauge {
            vec,
            states: states.into(),
        }
    }

    /// The allowed values.
    pub fn states(&self) -> &[&'static str] {
        &self.states
    }

    /// For the series identified by `labels` (the values of every label but
    /// the state, in order): 1 for `current`, 0 for every other allowed
    /// value. A `current` that is not allowed (or `None`, unknown) sets all
    /// of them to 0.
    pub fn set(&self, labels: &[&str], current: Option<&str>) {
        let mut values: Vec<&str> = Vec::with_capacity(labels.len() + 1);
        values.extend_from_slice(labels);
        values.push("");
        let last = values.len() - 1;
        for state in self.states.iter() {
            values[last] = state;
            self.vec
                .with_label_values(&values)
                .set(i64::from(Some(*state) == current));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Builder;

    #[test]
    fn exactly_one_state_is_one() {
        let b = Builder::new("pgaftest");
        let g = b.state_gauge("state", "State.", &["node"], &["a", "b", "c"]);
        g.set(&["1"], Some("b"));
        let text = String::from_utf8(crate::exposition::encode(b.registry()).unwrap()).unwrap();
        assert!(
            text.contains("pgaftest_state{node=\"1\",state=\"a\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("pgaftest_state{node=\"1\",state=\"b\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pgaftest_state{node=\"1\",state=\"c\"} 0"),
            "{text}"
        );
        g.set(&["1"], Some("zz"));
        let text = String::from_utf8(crate::exposition::encode(b.registry()).unwrap()).unwrap();
        assert!(!text.contains("} 1"), "{text}");
    }
}
