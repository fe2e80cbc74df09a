//! The bundled runtime's layer unpacking (tar, gzip, zstd): whatever a layer says, nothing is
//! written outside the rootfs and no symlink is followed out of it; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cricket_runtime::image::unpack::check_unpack(data);
});
