//! Area `image`: pulling fixture images from the embedded registry (by tag, without a tag, by
//! digest, from an index, with credentials, unknown tags, past a deadline) and what
//! ImageStatus/ListImages say right after the pull. Hostile images: `image_hostile`.

use std::time::Duration;

use cricket_harness::{
    CaseDef, CaseError, Cx, Failure, FailureKind, Req, Suite, Tag, case_fn, cri, ensure,
    ensure_eq,
};
use tonic::Code;

use crate::kit;

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
        id: "image.pull.without_tag",
        suite: Suite::Conformance,
        summary: "pulling a reference without a tag pulls :latest and names it so",
        reqs: &[PULL],
        tags: &[Tag::Conformance, Tag::Image],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(without_tag),
    },
    CaseDef {
        id: "image.pull.by_digest",
        suite: Suite::Conformance,
        summary: "pulling by digest gives no tag but the repo digest",
        reqs: &[PULL, ID_MATCHES_REF],
        tags: &[Tag::Conformance, Tag::Image],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(by_digest),
    },
    CaseDef {
        id: "image.pull.deadline",
        suite: Suite::Conformance,
        summary: "a pull that cannot finish before its deadline fails with DeadlineExceeded",
        reqs: &[PULL],
        tags: &[Tag::Conformance, Tag::Image, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(pull_deadline),
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

/// Pulls a reference as given (not a fixture name), so cases can pull tags, digests and bare
/// repositories the catalogue does not list; returns the image_ref.
pub(super) async fn pull_ref(cx: &Cx, reference: &str) -> Result<String, CaseError> {
    Ok(cx.cri().pull_image(pull_request(reference)).await?.image_ref)
}

/// A PullImage of `reference` as given, no credentials.
pub(super) fn pull_request(reference: &str) -> cri::PullImageRequest {
    cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: reference.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) async fn remove_ref(cx: &Cx, reference: &str) -> Result<(), CaseError> {
    cx.cri()
        .remove_image(cri::RemoveImageRequest {
            image: Some(cri::ImageSpec {
                image: reference.to_string(),
                ..Default::default()
            }),
        })
        .await?;
    Ok(())
}

pub(super) fn repo_of(reference: &str) -> String {
    reference
        .rsplit_once(':')
        .map(|(r, _)| r.to_string())
        .unwrap_or_else(|| reference.to_string())
}

/// Pull by tag, then the image must be visible under that tag with `Image.id == image_ref`
/// (api.proto: "This value MUST always match `PullImageResponse.image_ref`"), a size > 0,
/// and be listed.
async fn pull_by_tag(cx: &Cx) -> Result<(), CaseError> {
    let (reference, image_ref) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let image = cx
        .step("image status by tag", async {
            image_status(cx, &reference).await?.ok_or_else(|| {
                CaseError::fail(
                    "image.status.present_after_pull",
                    format!("ImageStatus({reference}) is nil right after the pull"),
                )
            })
        })
        .await?;
    cx.step("check status fields", async {
        ensure_eq!(
            "image.status.id_matches_image_ref",
            image_ref,
            image.id,
            "Image.id vs PullImageResponse.image_ref"
        );
        ensure!(
            "image.status.repo_tags_contain_tag",
            image.repo_tags.contains(&reference),
            "repo_tags {:?} lack {reference}",
            image.repo_tags
        );
        ensure!(
            "image.status.size_positive",
            image.size > 0,
            "Image.size is {}",
            image.size
        );
        Ok(())
    })
    .await?;
    cx.step("listed", async {
        let list = cx
            .cri()
            .list_images(cri::ListImagesRequest { filter: None })
            .await?;
        ensure!(
            "image.list.contains_pulled",
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
                "image.pull.unknown_tag_is_error",
                "PullImage of a missing tag succeeded",
                "an error status",
                format!("{resp:?}"),
            )),
            Err(s) => {
                ensure!(
                    "image.pull.error_has_message",
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
            "image.status.nil_after_failed_pull",
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
                "image.pull.auth_required",
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
            "image.status.nil_after_failed_pull",
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
        let image = st.ok_or_else(|| {
            CaseError::fail(
                "image.status.present_after_pull",
                "ImageStatus is nil after the authenticated pull",
            )
        })?;
        ensure_eq!(
            "image.status.id_matches_image_ref",
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
        .step("pull the index image", kit::pull(cx, "multiarch"))
        .await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "index")).await?;
    let config = kit::container_config(
        cx,
        "platform",
        &reference,
        &["/bin/probe", "cat", "/platform"],
    );
    let log = kit::log_file(&pod_cfg, &config);
    let id = cx
        .step(
            "create container",
            kit::create_container(cx, &pod, &pod_cfg, config),
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
            kit::wait_exited(cx, &id, Duration::from_secs(30),
            ),
        )
        .await?;
    cx.step("check platform", async {
        ensure_eq!(
            "container.status.exit_code",
            0,
            st.exit_code,
            "exit code of `cat /platform`"
        );
        let (_, out) = kit::read_log(&log)?;
        ensure_eq!(
            "image.pull.platform_matches_host",
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

async fn without_tag(cx: &Cx) -> Result<(), CaseError> {
    let repo = repo_of(&cx.image("probe")?);
    cx.step("pull without a tag", pull_ref(cx, &repo)).await?;
    let img = image_status(cx, &format!("{repo}:latest"))
        .await?
        .ok_or_else(|| {
            CaseError::fail(
                "image.pull.untagged_means_latest",
                format!("{repo}:latest not present after pulling {repo}"),
            )
        })?;
    ensure!(
        "image.status.repo_tags_contain_tag",
        img.repo_tags.contains(&format!("{repo}:latest")),
        "repo_tags {:?} lack {repo}:latest",
        img.repo_tags
    );
    Ok(())
}

async fn by_digest(cx: &Cx) -> Result<(), CaseError> {
    let (reference, _) = cx
        .step(
            "pull by tag to learn the digest",
            kit::pull(cx, "removable-1"),
        )
        .await?;
    let img = image_status(cx, &reference)
        .await?
        .ok_or_else(|| CaseError::fail("image.status.present_after_pull", "image missing"))?;
    let digest_ref = img.repo_digests.first().cloned().ok_or_else(|| {
        CaseError::fail(
            "image.status.repo_digests_set",
            format!("no repo_digests for {reference}"),
        )
    })?;
    cx.step("remove", remove_ref(cx, &reference)).await?;
    let image_ref = cx.step("pull by digest", pull_ref(cx, &digest_ref)).await?;
    let img = image_status(cx, &digest_ref).await?.ok_or_else(|| {
        CaseError::fail(
            "image.status.present_after_digest_pull",
            format!("{digest_ref} not present after pulling it"),
        )
    })?;
    ensure_eq!(
        "image.status.id_matches_image_ref",
        image_ref,
        img.id,
        "Image.id vs image_ref"
    );
    ensure!(
        "image.status.repo_digests_contain_digest",
        img.repo_digests.contains(&digest_ref),
        "repo_digests {:?} lack {digest_ref}",
        img.repo_digests
    );
    ensure!(
        "image.pull.digest_adds_no_tag",
        !img.repo_tags.contains(&reference),
        "a digest pull brought back the tag {reference}"
    );
    Ok(())
}

async fn pull_deadline(cx: &Cx) -> Result<(), CaseError> {
    let reference = cx.image("large")?;
    let quick = cx.cri().with_deadline(Duration::from_millis(1));
    let r = quick
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: reference,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    let s = kit::expect_err(
        "image.pull.deadline_is_error",
        r,
        "a pull with a 1 ms deadline",
    )?;
    if s.code() != Code::DeadlineExceeded {
        let mut f = Failure::new(
            FailureKind::Status,
            "image.pull.deadline_exceeded_code",
            format!("a pull past its deadline answered {:?}: {}", s.code(), s.message()),
        );
        f.expected = Some(format!("{:?}", Code::DeadlineExceeded));
        f.actual = Some(format!("{:?}", s.code()));
        return Err(f.into());
    }
    Ok(())
}

/// ImageStatus on a reference never pulled is not an error: the image is just nil.
async fn status_absent(cx: &Cx) -> Result<(), CaseError> {
    let probe = cx.image("probe")?;
    let repo = probe.rsplit_once(':').map(|(r, _)| r).unwrap_or(&probe);
    let absent = format!("{repo}:never-pulled-{}", cx.run_id());
    cx.step("image status", async {
        let st = image_status(cx, &absent).await?;
        ensure!(
            "image.status.nil_when_absent",
            st.is_none(),
            "ImageStatus of a never-pulled image returned {st:?}"
        );
        Ok(())
    })
    .await
}
