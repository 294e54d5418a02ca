//! `metadata` fuzz target: the invariants are in `hexyard_common::testing::fuzz::metadata`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hexyard_common::testing::fuzz::metadata(data));
