//! `cricket images list|export|push`: the fixture images outside a run.

use std::path::PathBuf;
use std::process::ExitCode;

use cricket_fixtures::set::{self, Fixture};

use super::fail_usage;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Logical names, references and manifest digests (stable across builds)
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: super::list::Format,
    },
    /// Write every fixture into an OCI image layout directory
    Export { dir: PathBuf },
    /// Copy every fixture to a plain-HTTP registry (host:port)
    Push {
        registry: String,
        /// USER:PASSWORD for basic auth
        #[arg(long)]
        user: Option<String>,
    },
}

fn build() -> Result<Vec<Fixture>, ExitCode> {
    set::build(None).map_err(|e| fail_usage(format!("building fixture images: {e}")))
}

pub fn main(a: Args) -> ExitCode {
    match a.command {
        Command::List { format } => {
            let fixtures = match build() {
                Ok(f) => f,
                Err(code) => return code,
            };
            match format {
                super::list::Format::Text => {
                    for f in &fixtures {
                        println!(
                            "{:<22} {:<34} {}",
                            f.name,
                            f.reference(),
                            f.built.oci.digest
                        );
                        println!("    {}", f.description);
                    }
                }
                super::list::Format::Json => {
                    let items: Vec<serde_json::Value> = fixtures
                        .iter()
                        .map(|f| {
                            serde_json::json!({
                                "name": f.name,
                                "repository": f.repo,
                                "tags": f.tags,
                                "digest": f.built.oci.digest,
                                "docker_digest": f.built.docker.digest,
                                "media_type": f.built.oci.media_type,
                                "auth": f.auth,
                                "description": f.description,
                            })
                        })
                        .collect();
                    match serde_json::to_string_pretty(&items) {
                        Ok(s) => println!("{s}"),
                        Err(e) => return fail_usage(e),
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Export { dir } => {
            let fixtures = match build() {
                Ok(f) => f,
                Err(code) => return code,
            };
            match cricket_fixtures::layout::export(&fixtures, &dir) {
                Ok(n) => {
                    println!("wrote {n} image references to OCI layout {}", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail_usage(e),
            }
        }
        Command::Push { registry, user } => {
            let pusher = match cricket_fixtures::push::Pusher::new(&registry, user.as_deref()) {
                Ok(p) => p,
                Err(e) => return fail_usage(e),
            };
            let fixtures = match build() {
                Ok(f) => f,
                Err(code) => return code,
            };
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => return fail_usage(format!("cannot start the async runtime: {e}")),
            };
            match rt.block_on(pusher.push(&fixtures)) {
                Ok(r) => {
                    println!(
                        "pushed {} tags to {registry}: {} blobs uploaded, {} already present, {} manifests",
                        r.tags.len(),
                        r.blobs_uploaded,
                        r.blobs_present,
                        r.manifests
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cricket: push to {registry} failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
