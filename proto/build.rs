//! Compiles the vendored `api.proto` with protox (a protobuf compiler written in Rust), so a
//! machine without `protoc` builds cricket.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=runtime/v1/api.proto");
    let fds = protox::compile(["runtime/v1/api.proto"], ["."])?;
    let mut cfg = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // RPCs a server does not implement answer `Unimplemented`, as api.proto clients expect.
        .generate_default_stubs(true);
    if std::env::var_os("CARGO_FEATURE_FUZZ").is_some() {
        cfg = cfg.type_attribute(
            ".",
            "#[derive(arbitrary::Arbitrary, serde::Serialize, serde::Deserialize)]",
        );
    }
    cfg.compile_fds(fds)?;
    Ok(())
}
