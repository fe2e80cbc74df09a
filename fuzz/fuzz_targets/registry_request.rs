//! The fixture registry's request parsing (route, Range, Authorization, Accept): no input may
//! panic, and every accepted route satisfies the name/tag/digest rules the handlers rely on.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cricket_fixtures::registry::check_request_parsing(data);
});
