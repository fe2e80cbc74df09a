//! Area `image`, continued: what the store says after pulls and removals (status by every
//! kind of reference, users, tags, lists, removal semantics, file system usage), deadlines and
//! hostile layers.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Need, Req, Tag, case_fn, cri, ensure, ensure_eq};
use tonic::Code;

use super::image::{ID_MATCHES_REF, PULL, image_status};
use super::util;

const REMOVE: Req = Req {
    rpc: "RemoveImage",
    rule: "Note that if the image is referenced by multiple tags (even across different repositories if they resolve to the same image digest), removing the image by a single tag will remove all of its tags.",
};
const NEXT_CALL: Req = Req {
    rpc: "RemoveImage",
    rule: "The next call to ListImages, ImageStatus, ImageFsInfo will not return this image.",
};
const USER_UID: Req = Req {
    rpc: "ImageStatus",
    rule: "UID that will run the command(s). This is used as a default if no user is specified when creating the container. UID and the following user name are mutually exclusive.",
};
const FS_INFO: Req = Req {
    rpc: "ImageFsInfo",
    rule: "ImageFSInfo returns information of the filesystem that is used to store images.",
};
const I: &[Tag] = &[Tag::Conformance, Tag::Image];

pub const CASES: &[CaseDef] = &[
    super::case(
        "image.pull.without_tag",
        "pulling a reference without a tag pulls :latest and names it so",
        &[PULL],
        I,
        &[],
        60,
        case_fn!(without_tag),
    ),
    super::case(
        "image.pull.by_digest",
        "pulling by digest gives no tag but the repo digest",
        &[PULL, ID_MATCHES_REF],
        I,
        &[],
        60,
        case_fn!(by_digest),
    ),
    super::case(
        "image.status.all_references",
        "ImageStatus by id, short id, tag and digest all return the same image",
        &[ID_MATCHES_REF],
        I,
        &[],
        60,
        case_fn!(all_references),
    ),
    super::case(
        "image.status.uid_numeric_user",
        "USER 1002 is reported as uid 1002 and no username",
        &[USER_UID],
        I,
        &[],
        60,
        case_fn!(uid_numeric),
    ),
    super::case(
        "image.status.username",
        "USER www-data is reported as username www-data and no uid",
        &[USER_UID],
        I,
        &[],
        60,
        case_fn!(username),
    ),
    super::case(
        "image.status.uid_with_group",
        "USER 1003:users is reported as uid 1003",
        &[USER_UID],
        I,
        &[],
        60,
        case_fn!(uid_with_group),
    ),
    super::case(
        "image.status.username_with_group",
        "USER www-data:www-data is reported as username www-data",
        &[USER_UID],
        I,
        &[],
        60,
        case_fn!(username_with_group),
    ),
    super::case(
        "image.list.three_tags_one_image",
        "three tags of one image are one image with three repo_tags",
        &[Req {
            rpc: "ListImages",
            rule: "Other names by which this image is known.",
        }],
        I,
        &[],
        60,
        case_fn!(three_tags),
    ),
    super::case(
        "image.list.three_images",
        "three distinct images are three images, each with its own tag",
        &[Req {
            rpc: "ListImages",
            rule: "ListImages lists existing images.",
        }],
        I,
        &[],
        60,
        case_fn!(three_images),
    ),
    super::case(
        "image.remove.by_one_tag_removes_all",
        "removing one tag removes the image with all its tags",
        &[REMOVE, NEXT_CALL],
        I,
        &[],
        60,
        case_fn!(remove_by_tag),
    ),
    super::case(
        "image.remove.consistent_right_after",
        "right after RemoveImage, neither ImageStatus nor ListImages shows the image",
        &[NEXT_CALL],
        I,
        &[],
        60,
        case_fn!(consistent_after_remove),
    ),
    super::case(
        "image.remove.simultaneous",
        "five simultaneous RemoveImage calls of one image all succeed",
        &[Req {
            rpc: "RemoveImage",
            rule: "This call is idempotent, and must not return an error if the image has already been removed.",
        }],
        &[Tag::Conformance, Tag::Image, Tag::Concurrency],
        &[],
        60,
        case_fn!(simultaneous_remove),
    ),
    super::case(
        "image.fs_info.follows_pull_and_remove",
        "ImageFsInfo usage rises after a pull of a large image and falls after its removal",
        &[FS_INFO, NEXT_CALL],
        I,
        &[],
        120,
        case_fn!(fs_info_follows),
    ),
    super::case(
        "image.pull.deadline",
        "a pull that cannot finish before its deadline fails with DeadlineExceeded",
        &[PULL],
        &[Tag::Conformance, Tag::Image, Tag::Negative],
        &[],
        60,
        case_fn!(pull_deadline),
    ),
    super::case(
        "image.pull.hostile_layers",
        "images whose layers try to escape the rootfs are refused or neutralised: nothing appears outside the runtime's storage",
        &[PULL],
        &[Tag::Conformance, Tag::Image, Tag::Security],
        &[Need::Root],
        120,
        case_fn!(hostile_layers),
    ),
];

async fn pull_ref(cx: &Cx, reference: &str) -> Result<String, CaseError> {
    Ok(cx
        .cri()
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: reference.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .image_ref)
}

async fn remove_ref(cx: &Cx, reference: &str) -> Result<(), CaseError> {
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

fn repo_of(reference: &str) -> String {
    reference
        .rsplit_once(':')
        .map(|(r, _)| r.to_string())
        .unwrap_or_else(|| reference.to_string())
}

async fn without_tag(cx: &Cx) -> Result<(), CaseError> {
    let repo = repo_of(&cx.image("probe")?);
    cx.step("pull without a tag", pull_ref(cx, &repo)).await?;
    let img = image_status(cx, &format!("{repo}:latest"))
        .await?
        .ok_or_else(|| {
            CaseError::fail(format!("{repo}:latest not present after pulling {repo}"))
        })?;
    ensure!(
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
            util::pull(cx, "removable-1"),
        )
        .await?;
    let img = image_status(cx, &reference)
        .await?
        .ok_or_else(|| CaseError::fail("image missing"))?;
    let digest_ref = img
        .repo_digests
        .first()
        .cloned()
        .ok_or_else(|| CaseError::fail(format!("no repo_digests for {reference}")))?;
    cx.step("remove", remove_ref(cx, &reference)).await?;
    let image_ref = cx.step("pull by digest", pull_ref(cx, &digest_ref)).await?;
    let img = image_status(cx, &digest_ref)
        .await?
        .ok_or_else(|| CaseError::fail(format!("{digest_ref} not present after pulling it")))?;
    ensure_eq!(image_ref, img.id, "Image.id vs image_ref");
    ensure!(
        img.repo_digests.contains(&digest_ref),
        "repo_digests {:?} lack {digest_ref}",
        img.repo_digests
    );
    ensure!(
        !img.repo_tags.contains(&reference),
        "a digest pull brought back the tag {reference}"
    );
    Ok(())
}

async fn all_references(cx: &Cx) -> Result<(), CaseError> {
    let (reference, image_ref) = cx.step("pull", util::pull(cx, "distinct-3")).await?;
    let by_tag = image_status(cx, &reference)
        .await?
        .ok_or_else(|| CaseError::fail("missing by tag"))?;
    let digest = by_tag
        .repo_digests
        .first()
        .cloned()
        .ok_or_else(|| CaseError::fail("no repo digest"))?;
    let short = image_ref.trim_start_matches("sha256:")[..12].to_string();
    for (what, r) in [
        ("id", image_ref.clone()),
        ("short id", short),
        ("digest", digest),
    ] {
        let img = cx
            .step(&format!("status by {what}"), image_status(cx, &r))
            .await?
            .ok_or_else(|| CaseError::fail(format!("ImageStatus by {what} ({r}) is nil")))?;
        ensure_eq!(by_tag, img, "ImageStatus by {what} vs by tag");
    }
    Ok(())
}

async fn user_of(cx: &Cx, name: &str) -> Result<(Option<i64>, String), CaseError> {
    let (reference, _) = cx
        .step(&format!("pull {name}"), util::pull(cx, name))
        .await?;
    let img = image_status(cx, &reference)
        .await?
        .ok_or_else(|| CaseError::fail("image missing"))?;
    Ok((img.uid.map(|u| u.value), img.username))
}

async fn uid_numeric(cx: &Cx) -> Result<(), CaseError> {
    ensure_eq!(
        (Some(1002), String::new()),
        user_of(cx, "user-1002").await?,
        "(uid, username)"
    );
    Ok(())
}

async fn username(cx: &Cx) -> Result<(), CaseError> {
    ensure_eq!(
        (None, "www-data".to_string()),
        user_of(cx, "user-www-data").await?,
        "(uid, username)"
    );
    Ok(())
}

async fn uid_with_group(cx: &Cx) -> Result<(), CaseError> {
    ensure_eq!(
        (Some(1003), String::new()),
        user_of(cx, "user-1003-users").await?,
        "(uid, username)"
    );
    Ok(())
}

async fn username_with_group(cx: &Cx) -> Result<(), CaseError> {
    ensure_eq!(
        (None, "www-data".to_string()),
        user_of(cx, "user-www-data-group").await?,
        "(uid, username)"
    );
    Ok(())
}

async fn three_tags(cx: &Cx) -> Result<(), CaseError> {
    let repo = repo_of(&cx.image("tagged")?);
    let mut ids = Vec::new();
    for t in ["a", "b", "c"] {
        ids.push(
            cx.step(&format!("pull :{t}"), pull_ref(cx, &format!("{repo}:{t}")))
                .await?,
        );
    }
    ensure!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "three tags of one image gave different ids: {ids:?}"
    );
    let list = cx
        .cri()
        .list_images(cri::ListImagesRequest { filter: None })
        .await?;
    let img = list
        .images
        .iter()
        .find(|i| i.id == ids[0])
        .ok_or_else(|| CaseError::fail("image not listed"))?;
    let mut tags: Vec<String> = img
        .repo_tags
        .iter()
        .filter(|t| t.starts_with(&repo))
        .cloned()
        .collect();
    tags.sort();
    ensure_eq!(
        vec![
            format!("{repo}:a"),
            format!("{repo}:b"),
            format!("{repo}:c")
        ],
        tags,
        "repo_tags of the one image"
    );
    Ok(())
}

async fn three_images(cx: &Cx) -> Result<(), CaseError> {
    let mut ids = Vec::new();
    for n in ["distinct-1", "distinct-2", "distinct-3"] {
        ids.push(cx.step(&format!("pull {n}"), util::pull(cx, n)).await?);
    }
    let list = cx
        .cri()
        .list_images(cri::ListImagesRequest { filter: None })
        .await?;
    for (reference, id) in &ids {
        let img = list
            .images
            .iter()
            .find(|i| i.id == *id)
            .ok_or_else(|| CaseError::fail(format!("{reference} not listed")))?;
        ensure!(
            img.repo_tags.contains(reference),
            "{id} does not carry {reference}: {:?}",
            img.repo_tags
        );
    }
    let distinct: std::collections::HashSet<&String> = ids.iter().map(|(_, id)| id).collect();
    ensure_eq!(3, distinct.len(), "distinct image ids");
    Ok(())
}

async fn remove_by_tag(cx: &Cx) -> Result<(), CaseError> {
    let repo = repo_of(&cx.image("tagged-removable")?);
    for t in ["x", "y", "z"] {
        cx.step(&format!("pull :{t}"), pull_ref(cx, &format!("{repo}:{t}")))
            .await?;
    }
    cx.step("remove :x", remove_ref(cx, &format!("{repo}:x")))
        .await?;
    for t in ["x", "y", "z"] {
        let st = image_status(cx, &format!("{repo}:{t}")).await?;
        ensure!(
            st.is_none(),
            "{repo}:{t} still present after removing {repo}:x"
        );
    }
    Ok(())
}

async fn consistent_after_remove(cx: &Cx) -> Result<(), CaseError> {
    let (reference, id) = cx.step("pull", util::pull(cx, "removable-2")).await?;
    cx.step("remove", remove_ref(cx, &reference)).await?;
    ensure!(
        image_status(cx, &reference).await?.is_none(),
        "ImageStatus still returns the removed image"
    );
    let list = cx
        .cri()
        .list_images(cri::ListImagesRequest { filter: None })
        .await?;
    ensure!(
        !list.images.iter().any(|i| i.id == id),
        "ListImages still returns the removed image"
    );
    Ok(())
}

async fn simultaneous_remove(cx: &Cx) -> Result<(), CaseError> {
    let (reference, id) = cx.step("pull", util::pull(cx, "removable-3")).await?;
    cx.step("5 removes at once", async {
        let jobs = (0..5).map(|_| remove_ref(cx, &id));
        futures::future::try_join_all(jobs).await.map(drop)
    })
    .await?;
    ensure!(
        image_status(cx, &reference).await?.is_none(),
        "image present after the removals"
    );
    Ok(())
}

async fn used_bytes(cx: &Cx) -> Result<u64, CaseError> {
    let info = cx.cri().image_fs_info(cri::ImageFsInfoRequest {}).await?;
    Ok(info
        .image_filesystems
        .iter()
        .filter_map(|f| f.used_bytes.as_ref())
        .map(|u| u.value)
        .sum())
}

/// Waits until ImageFsInfo usage satisfies `ok`, for at most 45 s: api.proto lets usage lag
/// ("may include images that were removed, but are still being cleaned up").
async fn usage_until(cx: &Cx, what: &str, ok: impl Fn(u64) -> bool) -> Result<u64, CaseError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let used = used_bytes(cx).await?;
        if ok(used) {
            return Ok(used);
        }
        if std::time::Instant::now() > deadline {
            return Err(CaseError::fail(format!(
                "ImageFsInfo usage never {what} (last: {used} bytes)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn fs_info_follows(cx: &Cx) -> Result<(), CaseError> {
    const STEP: u64 = 32 << 20;
    let reference = cx.image("large")?;
    cx.step("make sure it is absent", remove_ref(cx, &reference))
        .await?;
    let before = cx.step("usage without the image", used_bytes(cx)).await?;
    cx.step("pull large (64 MiB)", util::pull(cx, "large"))
        .await?;
    let with = cx
        .step(
            "usage rises",
            usage_until(cx, &format!("rose by {STEP} bytes from {before}"), |u| {
                u >= before.saturating_add(STEP)
            }),
        )
        .await?;
    cx.step("remove", remove_ref(cx, &reference)).await?;
    cx.step(
        "usage falls",
        usage_until(cx, &format!("fell by {STEP} bytes from {with}"), |u| {
            u.saturating_add(STEP) <= with
        }),
    )
    .await?;
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
    let s = util::expect_err(r, "a pull with a 1 ms deadline")?;
    ensure_eq!(Code::DeadlineExceeded, s.code(), "code ({})", s.message());
    Ok(())
}

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
    ] {
        let reference = cx.image(name)?;
        // Refusing is fine; so is pulling with the entry neutralised.
        let _ = cx
            .step(&format!("pull {name}"), async {
                Ok(cx
                    .cri()
                    .pull_image(cri::PullImageRequest {
                        image: Some(cri::ImageSpec {
                            image: reference.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .await)
            })
            .await?;
    }
    ensure_eq!(
        before,
        escape_markers(),
        "files named cricket-escape* on the host"
    );
    ensure!(
        std::fs::read("/etc/passwd").unwrap_or_default() == passwd,
        "/etc/passwd changed during hostile pulls"
    );
    let digest = cx.image("hostile-digest")?;
    ensure!(
        image_status(cx, &digest).await?.is_none(),
        "the digest-mismatch image was stored"
    );
    Ok(())
}
