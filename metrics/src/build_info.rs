//! `<prefix>_build_info{version="…"} 1`: which build a component runs, in
//! the `_info` idiom (a constant 1 whose labels carry the information), so
//! that it can be joined onto any other series of the same target.

use crate::Builder;

/// Register `<prefix>_build_info` with `version` (the component's
/// `CARGO_PKG_VERSION`).
#[track_caller]
pub fn register(builder: &Builder, version: &str) {
    builder
        .int_gauge_vec(
            "build_info",
            "Build information: the version of the running program; always 1.",
            &["version"],
        )
        .with_label_values(&[version])
        .set(1);
}
