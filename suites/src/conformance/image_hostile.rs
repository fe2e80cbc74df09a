//! Area `image`, continued: hostile images. Layers that try to write outside the rootfs
//! (`..`, absolute paths, symlinks, hardlinks, devices), a layer whose content does not match its
//! digest, and a manifest whose digest is a path: nothing may land on the host, and what is not
//! content-addressed is refused.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Need, Req, Suite, Tag, case_fn, ensure, ensure_eq};
use tonic::Code;

use super::image::{PULL, image_status, pull_request};
use crate::kit;

const DIGEST: Req = Req {
    rpc: "PullImage",
    rule: "OCI image spec, descriptor `digest`: the digest of the targeted content, `algorithm:encoded` as Digests defines (sha256: 64 lowercase hex). A manifest naming content by anything else is not content-addressed and the request cannot be honoured (InvalidArgument).",
};

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "image.pull.hostile_layers",
        suite: Suite::Conformance,
        summary: "images whose layers (or digests) try to escape the rootfs are refused or neutralised: nothing appears outside the runtime's storage",
        reqs: &[PULL],
        tags: &[Tag::Conformance, Tag::Image, Tag::Security],
        needs: &[Need::Root],
        timeout: Duration::from_secs(120),
        run: case_fn!(hostile_layers),
    },
    CaseDef {
        id: "image.pull.digest_path_refused",
        suite: Suite::Conformance,
        summary: "a manifest whose layer digest is a path (sha256:../../…) is refused with InvalidArgument before anything is fetched",
        reqs: &[DIGEST],
        tags: &[Tag::Conformance, Tag::Image, Tag::Security, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(digest_path),
    },
];

fn escape_markers() -> Vec<String> {
    let mut v = Vec::new();
    for dir in ["/", "/tmp", "/etc"] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            v.extend(
                rd.flatten()
                    .map(|e| e.path().display().to_string())
                    .filter(|p| p.contains("cricket-escape")),
            );
        }
    }
    v.sort();
    v
}

async fn hostile_layers(cx: &Cx) -> Result<(), CaseError> {
    let before = escape_markers();
    let passwd = std::fs::read("/etc/passwd").unwrap_or_default();
    for name in [
        "hostile-dotdot",
        "hostile-absolute",
        "hostile-symlink",
        "hostile-hardlink",
        "hostile-device",
        "hostile-digest",
        "hostile-digest-path",
    ] {
        let reference = cx.image(name)?;
        // Refusing is fine; so is pulling with the entry neutralised.
        let _ = cx
            .step(&format!("pull {name}"), async {
                Ok(cx.cri().pull_image(pull_request(&reference)).await)
            })
            .await?;
    }
    ensure_eq!(
        "image.pull.nothing_outside_rootfs",
        before,
        escape_markers(),
        "files named cricket-escape* on the host"
    );
    ensure!(
        "image.pull.host_passwd_unchanged",
        std::fs::read("/etc/passwd").unwrap_or_default() == passwd,
        "/etc/passwd changed during hostile pulls"
    );
    let digest = cx.image("hostile-digest")?;
    ensure!(
        "image.pull.digest_mismatch_not_stored",
        image_status(cx, &digest).await?.is_none(),
        "the digest-mismatch image was stored"
    );
    Ok(())
}

/// A layer digest that is a path (`sha256:../../…`) is not a digest: refused before use.
async fn digest_path(cx: &Cx) -> Result<(), CaseError> {
    let reference = cx.image("hostile-digest-path")?;
    let r = cx.cri().pull_image(pull_request(&reference)).await;
    let what = "PullImage of an image whose layer digest is sha256:../../…";
    let s = kit::expect_err("image.pull.digest_path_refused", r, what)?;
    kit::expect_code("image.pull.digest_path_refused", Code::InvalidArgument, &s, what)
}

