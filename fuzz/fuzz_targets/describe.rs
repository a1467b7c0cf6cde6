#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kvs_viewer::fuzzing::describe(data));
