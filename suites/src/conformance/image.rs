//! Area `image`: pulling fixture images from the embedded registry (by tag, from an index,
//! with credentials, unknown tags) and what ImageStatus/ListImages say afterwards.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};

use super::util;

pub(super) const PULL: Req = Req {
    rpc: "PullImage",
    rule: "PullImage pulls an image with authentication config.",
};
pub(super) const STATUS_NIL: Req = Req {
    rpc: "ImageStatus",
    rule: "ImageStatus returns the status of the image. If the image is not present, returns a response with ImageStatusResponse.Image set to nil.",
};
pub(super) const ID_MATCHES_REF: Req = Req {
    rpc: "ImageStatus",
    rule: "This value MUST always match `PullImageResponse.image_ref` when referring to the same image.",
};

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "image.pull.by_tag",
        suite: Suite::Conformance,
        summary: "a pulled image is in ImageStatus and ListImages under its tag, with id == image_ref and size > 0",
        reqs: &[
            PULL,
            ID_MATCHES_REF,
            Req {
                rpc: "ImageStatus",
                rule: "Size of the image in bytes. Must be > 0.",
            },
            Req {
                rpc: "ListImages",
                rule: "ListImages lists existing images.",
            },
        ],
        tags: &[Tag::Conformance, Tag::Image],
        needs: &[],
        timeout: Duration::from_secs(120),
        run: case_fn!(pull_by_tag),
    },
    CaseDef {
        id: "image.pull.unknown_tag",
        suite: Suite::Conformance,
        summary: "pulling a tag the registry does not have fails with a status that says so, and stores nothing",
        reqs: &[PULL, STATUS_NIL],
        tags: &[Tag::Conformance, Tag::Image, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(pull_unknown_tag),
    },
    CaseDef {
        id: "image.pull.with_auth",
        suite: Suite::Conformance,
        summary: "an image behind basic auth fails to pull without credentials and pulls with AuthConfig",
        reqs: &[PULL, STATUS_NIL],
        tags: &[Tag::Conformance, Tag::Image],
        needs: &[],
        timeout: Duration::from_secs(120),
        run: case_fn!(pull_with_auth),
    },
    CaseDef {
        id: "image.pull.index_platform",
        suite: Suite::Conformance,
        summary: "pulling an image index runs this machine's platform (linux/amd64), not another entry",
        reqs: &[
            PULL,
            Req {
                rpc: "CreateContainer",
                rule: "CreateContainer creates a new container in specified PodSandbox",
            },
        ],
        tags: &[Tag::Conformance, Tag::Image],
        needs: &[],
        timeout: Duration::from_secs(120),
        run: case_fn!(pull_index_platform),
    },
    CaseDef {
        id: "image.status.absent",
        suite: Suite::Conformance,
        summary: "ImageStatus of an image that was never pulled answers with no image, not an error",
        reqs: &[STATUS_NIL],
        tags: &[Tag::Conformance, Tag::Image, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(status_absent),
    },
];

pub(super) async fn image_status(
    cx: &Cx,
    reference: &str,
) -> Result<Option<cri::Image>, CaseError> {
    Ok(cx
        .cri()
        .image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: reference.to_string(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await?
        .image)
}

/// Pull by tag, then the image must be visible under that tag with `Image.id == image_ref`
/// (api.proto: "This value MUST always match `PullImageResponse.image_ref`"), a size > 0,
/// and be listed.
async fn pull_by_tag(cx: &Cx) -> Result<(), CaseError> {
    let (reference, image_ref) = cx.step("pull probe", util::pull(cx, "probe")).await?;
    let image = cx
        .step("image status by tag", async {
            image_status(cx, &reference).await?.ok_or_else(|| {
                CaseError::fail(format!(
                    "ImageStatus({reference}) is nil right after the pull"
                ))
            })
        })
        .await?;
    cx.step("check status fields", async {
        ensure_eq!(
            image_ref,
            image.id,
            "Image.id vs PullImageResponse.image_ref"
        );
        ensure!(
            image.repo_tags.contains(&reference),
            "repo_tags {:?} lack {reference}",
            image.repo_tags
        );
        ensure!(image.size > 0, "Image.size is {}", image.size);
        Ok(())
    })
    .await?;
    cx.step("listed", async {
        let list = cx
            .cri()
            .list_images(cri::ListImagesRequest { filter: None })
            .await?;
        ensure!(
            list.images.iter().any(|i| i.id == image.id),
            "ListImages does not contain {}",
            image.id
        );
        Ok(())
    })
    .await
}

/// A registry's MANIFEST_UNKNOWN must come back as a gRPC error with a message, and the failed
/// pull must leave no image behind (ImageStatus nil).
async fn pull_unknown_tag(cx: &Cx) -> Result<(), CaseError> {
    let probe = cx.image("probe")?;
    let repo = probe.rsplit_once(':').map(|(r, _)| r).unwrap_or(&probe);
    let missing = format!("{repo}:cricket-no-such-tag");
    cx.step("pull a tag that does not exist", async {
        let r = cx
            .cri()
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: missing.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await;
        match r {
            Ok(resp) => Err(CaseError::mismatch(
                "PullImage of a missing tag succeeded",
                "an error status",
                format!("{resp:?}"),
            )),
            Err(s) => {
                ensure!(
                    !s.message().trim().is_empty(),
                    "PullImage failed with {:?} but no message",
                    s.code()
                );
                Ok(())
            }
        }
    })
    .await?;
    cx.step("nothing stored", async {
        let st = image_status(cx, &missing).await?;
        ensure!(
            st.is_none(),
            "ImageStatus({missing}) returned {st:?} after a failed pull"
        );
        Ok(())
    })
    .await
}

/// The fixture `private` needs basic auth: no credentials must fail (and store nothing),
/// AuthConfig with the right username/password must succeed.
async fn pull_with_auth(cx: &Cx) -> Result<(), CaseError> {
    let reference = cx.image("private")?;
    let request = |auth: Option<cri::AuthConfig>| cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: reference.clone(),
            ..Default::default()
        }),
        auth,
        sandbox_config: None,
    };
    cx.step("pull without credentials", async {
        match cx.cri().pull_image(request(None)).await {
            Ok(resp) => Err(CaseError::mismatch(
                "pull without credentials succeeded",
                "an error status",
                format!("{resp:?}"),
            )),
            Err(_) => Ok(()),
        }
    })
    .await?;
    cx.step("nothing stored", async {
        let st = image_status(cx, &reference).await?;
        ensure!(
            st.is_none(),
            "ImageStatus returned {st:?} after the refused pull"
        );
        Ok(())
    })
    .await?;
    let auth = cri::AuthConfig {
        username: cricket_fixtures::set::AUTH_USER.into(),
        password: cricket_fixtures::set::AUTH_PASSWORD.into(),
        ..Default::default()
    };
    let resp = cx
        .step("pull with AuthConfig", async {
            Ok(cx.cri().pull_image(request(Some(auth))).await?)
        })
        .await?;
    cx.step("image present", async {
        let st = image_status(cx, &reference).await?;
        let image =
            st.ok_or_else(|| CaseError::fail("ImageStatus is nil after the authenticated pull"))?;
        ensure_eq!(
            resp.image_ref,
            image.id,
            "Image.id vs PullImageResponse.image_ref"
        );
        Ok(())
    })
    .await
}

/// The index has linux/amd64 and linux/arm64 entries, each with a `/platform` file naming
/// itself; a container from it must print this machine's platform.
async fn pull_index_platform(cx: &Cx) -> Result<(), CaseError> {
    let (reference, _) = cx
        .step("pull the index image", util::pull(cx, "multiarch"))
        .await?;
    let (pod, pod_cfg) = cx.step("run pod", util::run_pod(cx, "index")).await?;
    let config = util::container_config(
        cx,
        "platform",
        &reference,
        &["/bin/probe", "cat", "/platform"],
    );
    let log = util::log_file(&pod_cfg, &config);
    let id = cx
        .step(
            "create container",
            util::create_container(cx, &pod, &pod_cfg, config),
        )
        .await?;
    cx.step("start container", async {
        cx.cri()
            .start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            })
            .await?;
        Ok(())
    })
    .await?;
    let st = cx
        .step(
            "wait for exit",
            util::wait_state(
                cx,
                &id,
                cri::ContainerState::ContainerExited,
                Duration::from_secs(30),
            ),
        )
        .await?;
    cx.step("check platform", async {
        ensure_eq!(0, st.exit_code, "exit code of `cat /platform`");
        let (_, out) = util::read_log(&log)?;
        ensure_eq!(
            format!(
                "linux/{}\n",
                std::env::consts::ARCH
                    .replace("x86_64", "amd64")
                    .replace("aarch64", "arm64")
            ),
            out.get("stdout").cloned().unwrap_or_default(),
            "/platform of the pulled image"
        );
        Ok(())
    })
    .await
}

/// ImageStatus on a reference never pulled is not an error: the image is just nil.
async fn status_absent(cx: &Cx) -> Result<(), CaseError> {
    let probe = cx.image("probe")?;
    let repo = probe.rsplit_once(':').map(|(r, _)| r).unwrap_or(&probe);
    let absent = format!("{repo}:never-pulled-{}", cx.run_id());
    cx.step("image status", async {
        let st = image_status(cx, &absent).await?;
        ensure!(
            st.is_none(),
            "ImageStatus of a never-pulled image returned {st:?}"
        );
        Ok(())
    })
    .await
}
