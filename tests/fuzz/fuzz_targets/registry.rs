//! `registry` fuzz target: the invariants are in `hexyard_common::testing::fuzz::registry`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hexyard_common::testing::fuzz::registry(data));
