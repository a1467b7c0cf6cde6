#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kvs_viewer::fuzzing::ice_server_config(data));
