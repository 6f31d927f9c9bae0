//! Fuzz the adfa reader: any bytes give a trace or an error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ngram_profiler::trace::parse_adfa(Path::new("fuzz"), data);
});
