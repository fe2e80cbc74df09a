//! CRI messages: any bytes decoded as one of the API's request/response types (picked by the
//! first byte) must re-encode to an equal message and stable bytes; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cricket_proto::check_roundtrip(data);
});
