//! WebSocket channel messages (binary and base64, v4 and v5), resize events, status bodies and
//! protocol offers: no input may panic, and nothing is accepted for a channel that is not there.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cricket_stream::fuzzing::check_channel_bytes(data);
});
