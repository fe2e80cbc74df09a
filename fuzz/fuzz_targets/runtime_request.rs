//! The bundled runtime's request validation and config processing for RunPodSandbox and
//! CreateContainer, in-process: sysctls accepted only when namespaced, Kubernetes' command/args
//! and env rules, user resolution against the request's own /etc files; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cricket_runtime::request_check::check_request(data);
});
