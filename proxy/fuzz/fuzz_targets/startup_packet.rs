//! libFuzzer target: the startup-packet parser and the backend scanner on
//! arbitrary bytes (the parser checks its own invariants and panics if one
//! breaks).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proxy::fuzzing::startup_packet(data);
    let split = data.first().copied().unwrap_or(0) as usize;
    proxy::fuzzing::backend_scan(data, split);
});
