//! Area `image`, continued: what the store says after pulls and removals (status by every
//! kind of reference, users, tags, lists, removal semantics, file system usage).

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};

use super::image::{ID_MATCHES_REF, image_status, pull_ref, remove_ref, repo_of};
use crate::kit;

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
    CaseDef {
        id: "image.status.all_references",
        suite: Suite::Conformance,
        summary: "ImageStatus by id, short id, tag and digest all return the same image",
        reqs: &[ID_MATCHES_REF],
        tags: I,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(all_references),
    },
    CaseDef {
        id: "image.status.uid_numeric_user",
        suite: Suite::Conformance,
        summary: "USER 1002 is reported as uid 1002 and no username",
        reqs: &[USER_UID],
        tags: I,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(uid_numeric),
    },
    CaseDef {
        id: "image.status.username",
        suite: Suite::Conformance,
        summary: "USER www-data is reported as username www-data and no uid",
        reqs: &[USER_UID],
        tags: I,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(username),
    },
    CaseDef {
        id: "image.status.uid_with_group",
        suite: Suite::Conformance,
        summary: "USER 1003:users is reported as uid 1003",
        reqs: &[USER_UID],
        tags: I,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(uid_with_group),
    },
    CaseDef {
        id: "image.status.username_with_group",
        suite: Suite::Conformance,
        summary: "USER www-data:www-data is reported as username www-data",
        reqs: &[USER_UID],
        tags: I,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(username_with_group),
    },
    CaseDef {
        id: "image.list.three_tags_one_image",
        suite: Suite::Conformance,
        summary: "three tags of one image are one image with three repo_tags",
        reqs: &[Req {
            rpc: "ListImages",
            rule: "Other names by which this image is known.",
        }],
        tags: I,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(three_tags),
    },
    CaseDef {
        id: "image.list.three_images",
        suite: Suite::Conformance,
        summary: "three distinct images are three images, each with its own tag",
        reqs: &[Req {
            rpc: "ListImages",
            rule: "ListImages lists existing images.",
        }],
        tags: I,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(three_images),
    },
    CaseDef {
        id: "image.remove.by_one_tag_removes_all",
        suite: Suite::Conformance,
        summary: "removing one tag removes the image with all its tags",
        reqs: &[REMOVE, NEXT_CALL],
        tags: I,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(remove_by_tag),
    },
    CaseDef {
        id: "image.remove.consistent_right_after",
        suite: Suite::Conformance,
        summary: "right after RemoveImage, neither ImageStatus nor ListImages shows the image",
        reqs: &[NEXT_CALL],
        tags: I,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(consistent_after_remove),
    },
    CaseDef {
        id: "image.remove.simultaneous",
        suite: Suite::Conformance,
        summary: "five simultaneous RemoveImage calls of one image all succeed",
        reqs: &[Req {
            rpc: "RemoveImage",
            rule: "This call is idempotent, and must not return an error if the image has already been removed.",
        }],
        tags: &[Tag::Conformance, Tag::Image, Tag::Concurrency],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(simultaneous_remove),
    },
    CaseDef {
        id: "image.fs_info.follows_pull_and_remove",
        suite: Suite::Conformance,
        summary: "ImageFsInfo usage rises after a pull of a large image and falls after its removal",
        reqs: &[FS_INFO, NEXT_CALL],
        tags: I,
        needs: &[],
        timeout: Duration::from_secs(120),
        run: case_fn!(fs_info_follows),
    },
];

async fn all_references(cx: &Cx) -> Result<(), CaseError> {
    let (reference, image_ref) = cx.step("pull", kit::pull(cx, "distinct-3")).await?;
    let by_tag = image_status(cx, &reference)
        .await?
        .ok_or_else(|| CaseError::fail("image.status.present_after_pull", "missing by tag"))?;
    let digest = by_tag
        .repo_digests
        .first()
        .cloned()
        .ok_or_else(|| CaseError::fail("image.status.repo_digests_set", "no repo digest"))?;
    let short = image_ref.trim_start_matches("sha256:")[..12].to_string();
    for (what, r) in [
        ("id", image_ref.clone()),
        ("short id", short),
        ("digest", digest),
    ] {
        let img = cx
            .step(&format!("status by {what}"), image_status(cx, &r))
            .await?
            .ok_or_else(|| {
                CaseError::fail(
                    "image.status.found_by_every_reference",
                    format!("ImageStatus by {what} ({r}) is nil"),
                )
            })?;
        ensure_eq!(
            "image.status.same_for_every_reference",
            by_tag,
            img,
            "ImageStatus by {what} vs by tag"
        );
    }
    Ok(())
}

async fn user_of(cx: &Cx, name: &str) -> Result<(Option<i64>, String), CaseError> {
    let (reference, _) = cx
        .step(&format!("pull {name}"), kit::pull(cx, name))
        .await?;
    let img = image_status(cx, &reference)
        .await?
        .ok_or_else(|| CaseError::fail("image.status.present_after_pull", "image missing"))?;
    Ok((img.uid.map(|u| u.value), img.username))
}

async fn uid_numeric(cx: &Cx) -> Result<(), CaseError> {
    ensure_eq!(
        "image.status.user",
        (Some(1002), String::new()),
        user_of(cx, "user-1002").await?,
        "(uid, username)"
    );
    Ok(())
}

async fn username(cx: &Cx) -> Result<(), CaseError> {
    ensure_eq!(
        "image.status.user",
        (None, "www-data".to_string()),
        user_of(cx, "user-www-data").await?,
        "(uid, username)"
    );
    Ok(())
}

async fn uid_with_group(cx: &Cx) -> Result<(), CaseError> {
    ensure_eq!(
        "image.status.user",
        (Some(1003), String::new()),
        user_of(cx, "user-1003-users").await?,
        "(uid, username)"
    );
    Ok(())
}

async fn username_with_group(cx: &Cx) -> Result<(), CaseError> {
    ensure_eq!(
        "image.status.user",
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
        "image.pull.tags_share_id",
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
        .ok_or_else(|| CaseError::fail("image.list.contains_pulled", "image not listed"))?;
    let mut tags: Vec<String> = img
        .repo_tags
        .iter()
        .filter(|t| t.starts_with(&repo))
        .cloned()
        .collect();
    tags.sort();
    ensure_eq!(
        "image.list.repo_tags_all_tags",
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
        ids.push(cx.step(&format!("pull {n}"), kit::pull(cx, n)).await?);
    }
    let list = cx
        .cri()
        .list_images(cri::ListImagesRequest { filter: None })
        .await?;
    for (reference, id) in &ids {
        let img = list.images.iter().find(|i| i.id == *id).ok_or_else(|| {
            CaseError::fail(
                "image.list.contains_pulled",
                format!("{reference} not listed"),
            )
        })?;
        ensure!(
            "image.list.repo_tags_contain_tag",
            img.repo_tags.contains(reference),
            "{id} does not carry {reference}: {:?}",
            img.repo_tags
        );
    }
    let distinct: std::collections::HashSet<&String> = ids.iter().map(|(_, id)| id).collect();
    ensure_eq!(
        "image.list.distinct_ids",
        3,
        distinct.len(),
        "distinct image ids"
    );
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
            "image.remove.all_tags_removed",
            st.is_none(),
            "{repo}:{t} still present after removing {repo}:x"
        );
    }
    Ok(())
}

async fn consistent_after_remove(cx: &Cx) -> Result<(), CaseError> {
    let (reference, id) = cx.step("pull", kit::pull(cx, "removable-2")).await?;
    cx.step("remove", remove_ref(cx, &reference)).await?;
    ensure!(
        "image.remove.status_nil_after",
        image_status(cx, &reference).await?.is_none(),
        "ImageStatus still returns the removed image"
    );
    let list = cx
        .cri()
        .list_images(cri::ListImagesRequest { filter: None })
        .await?;
    ensure!(
        "image.remove.unlisted_after",
        !list.images.iter().any(|i| i.id == id),
        "ListImages still returns the removed image"
    );
    Ok(())
}

async fn simultaneous_remove(cx: &Cx) -> Result<(), CaseError> {
    let (reference, id) = cx.step("pull", kit::pull(cx, "removable-3")).await?;
    cx.step("5 removes at once", async {
        let jobs = (0..5).map(|_| remove_ref(cx, &id));
        futures::future::try_join_all(jobs).await.map(drop)
    })
    .await?;
    ensure!(
        "image.remove.status_nil_after",
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
async fn usage_until(
    check: &'static str,
    cx: &Cx,
    what: &str,
    ok: impl Fn(u64) -> bool,
) -> Result<u64, CaseError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let used = used_bytes(cx).await?;
        if ok(used) {
            return Ok(used);
        }
        if std::time::Instant::now() > deadline {
            return Err(CaseError::fail(
                check,
                format!("ImageFsInfo usage never {what} (last: {used} bytes)"),
            ));
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
    cx.step("pull large (64 MiB)", kit::pull(cx, "large"))
        .await?;
    let with = cx
        .step(
            "usage rises",
            usage_until(
                "image.fs_info.usage_rises_after_pull",
                cx,
                &format!("rose by {STEP} bytes from {before}"),
                |u| u >= before.saturating_add(STEP),
            ),
        )
        .await?;
    cx.step("remove", remove_ref(cx, &reference)).await?;
    cx.step(
        "usage falls",
        usage_until(
            "image.fs_info.usage_falls_after_remove",
            cx,
            &format!("fell by {STEP} bytes from {with}"),
            |u| u.saturating_add(STEP) <= with,
        ),
    )
    .await?;
    Ok(())
}
