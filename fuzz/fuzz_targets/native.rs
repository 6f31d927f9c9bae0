//! Fuzz the native trace reader, strict and partial: any bytes give events or an error, never
//! a panic; a partial read never yields more than a strict one would.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ngram_profiler::trace::{parse_native, NativeReader};

fuzz_target!(|data: &[u8]| {
    let strict = parse_native(Path::new("fuzz"), data);
    if let Ok(reader) = NativeReader::new(data, Path::new("fuzz")) {
        let partial: Vec<_> = reader.allow_partial(true).collect();
        if let Ok(trace) = strict {
            assert_eq!(partial.len(), trace.events.len());
        }
    }
});
