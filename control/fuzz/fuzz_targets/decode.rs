//! Feeds arbitrary bytes through the probe and decode path of a network stream; no
//! panic may escape the decode guards (see `decode_input.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

mod decode_input;

fuzz_target!(|data: &[u8]| decode_input::run(data));
