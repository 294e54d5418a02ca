//! `route` fuzz target: request paths (any UTF-8) through `hexyard_proxy::route::route`; the
//! invariants are in `hexyard_proxy::route::fuzz::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        hexyard_proxy::route::fuzz::check(path);
    }
});
