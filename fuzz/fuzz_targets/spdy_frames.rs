//! SPDY/3.1 frame decoding as the streaming port meets it: no input may panic, decoding may
//! not depend on how the bytes were split, and every decoded frame re-encodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cricket_stream::fuzzing::check_spdy_bytes(data);
});
