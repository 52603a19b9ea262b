#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mangaassist_fuzzing::sse(data));
