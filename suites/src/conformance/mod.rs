//! Conformance cases, one module per area: module `pod` holds the `pod.*` cases; an area too
//! big for one file is split into modules named `<area>_<topic>` (`container_config`) or
//! `<topic>_<area>` (`list_streams`). Each module has one `CASES` table; each case quotes the
//! `api.proto` sentence it enforces in its `req`, and states its tags, needs and timeout.

use cricket_harness::CaseDef;

/// Declares the area modules and collects their tables, so the list of areas exists once.
macro_rules! areas {
    ($($m:ident),+ $(,)?) => {
        $(pub mod $m;)+
        /// Every area module's case table, by module name.
        pub const AREAS: &[(&str, &[CaseDef])] = &[$((stringify!($m), $m::CASES)),+];
    };
}

areas!(
    attach_streaming,
    concurrency,
    container,
    container_config,
    container_image_files,
    container_mounts,
    container_status,
    events,
    exec_sync,
    exec_streaming,
    idempotence,
    image,
    image_hostile,
    image_store,
    list_streams,
    logs,
    negative,
    negative_list,
    negative_malformed,
    network,
    pod,
    pod_config,
    port_forward_streaming,
    runtime,
    security,
    security_lsm,
    security_namespaces,
    security_node_namespaces,
    security_paths,
    security_seccomp,
    stats,
    token_streaming,
    transport,
    transport_limits,
    websocket_streaming,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// A module holds the cases of the area it is named after (`pod`, or `<area>_<topic>` /
    /// `<topic>_<area>` for an area split over several files).
    #[test]
    fn each_module_holds_its_own_area() {
        for (module, cases) in AREAS {
            assert!(!cases.is_empty(), "module {module} registers no case");
            for c in *cases {
                let area = c.area();
                let ok = *module == area
                    || module.starts_with(&format!("{area}_"))
                    || module.ends_with(&format!("_{area}"));
                assert!(ok, "case {} (area {area}) is in module {module}", c.id);
            }
        }
    }
}
