//! The Prometheus text exposition (format 0.0.4) of one or more registries,
//! written by the `prometheus` crate's encoder.

use prometheus::{Encoder, Registry, TextEncoder};

/// The `Content-Type` of the text exposition.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The encoder refused a metric family (a bug in a metric definition).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the metrics: {0}")]
pub struct ExpositionError(#[from] prometheus::Error);

/// The text exposition of every metric of `registry`.
pub fn encode(registry: &Registry) -> Result<Vec<u8>, ExpositionError> {
    encode_all(&[registry])
}

/// The text exposition of the metrics of several registries (whose metric
/// names must not overlap), sorted by name.
pub fn encode_all(registries: &[&Registry]) -> Result<Vec<u8>, ExpositionError> {
    let mut families = Vec::new();
    for r in registries {
        families.extend(r.gather());
    }
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::with_capacity(16 * 1024);
    TextEncoder::new().encode(&families, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Builder;

    #[test]
    fn two_registries_in_one_exposition() {
        let a = Builder::new("pgafa");
        a.int_gauge("up", "Up.").set(1);
        let b = Builder::new("pgafb");
        b.int_counter("events_total", "Events.").inc();
        let text = String::from_utf8(encode_all(&[b.registry(), a.registry()]).unwrap()).unwrap();
        assert_eq!(
            text,
            "# HELP pgafa_up Up.\n# TYPE pgafa_up gauge\npgafa_up 1\n\
             # HELP pgafb_events_total Events.\n# TYPE pgafb_events_total counter\npgafb_events_total 1\n"
        );
    }
}
