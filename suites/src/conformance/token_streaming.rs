//! Area `streaming`, the URLs themselves: Exec, Attach and PortForward hand out a URL the
//! client redeems once, within a minute, and a runtime holds only so many unredeemed ones.
//! Clients that retry, or a flood of calls nobody follows up, meet these rules.

use std::time::Duration;

use cricket_harness::streaming::{self, RemoteCommand};
use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, ensure};
use futures::StreamExt;

use crate::kit;
use crate::kit::remote::{OUT_ERR, SESSION, SPDY, exec_req, failure, running};

const T: &[Tag] = &[Tag::Conformance, Tag::Streaming];

const TOKEN: Req = Req {
    rpc: "Exec",
    rule: "The streaming URL is single use and expires after a minute (the Kubernetes streaming server's token cache): a second or late use is refused.",
};

async fn token_reuse(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let url = cx.cri().exec(exec_req(&id, &["/bin/probe", "true"], OUT_ERR)).await?.url;
    cx.step("first use", async {
        let s = RemoteCommand::spdy(&url, SPDY, OUT_ERR, SESSION)
            .await
            .map_err(|e| failure("streaming.exec.connects", "first use", e))?;
        s.finish(SESSION).await.map(drop).map_err(|e| failure("streaming.exec.session_ends", "first use", e))
    })
    .await?;
    let again = cx.step("second use", async { Ok(RemoteCommand::spdy(&url, SPDY, OUT_ERR, SESSION).await) }).await?;
    match again {
        Ok(_) => Err(CaseError::fail("streaming.token.single_use", "the URL was accepted a second time")),
        Err(e) => {
            ensure!("streaming.token.single_use", e.contains("HTTP 4"), "a used URL must be refused with a 4xx, got: {e}");
            Ok(())
        }
    }
}

async fn token_expired(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let url = cx.cri().exec(exec_req(&id, &["/bin/probe", "true"], OUT_ERR)).await?.url;
    cx.step("wait 61 s", async {
        tokio::time::sleep(Duration::from_secs(61)).await;
        Ok(())
    })
    .await?;
    let late = cx.step("use it late", async { Ok(RemoteCommand::spdy(&url, SPDY, OUT_ERR, SESSION).await) }).await?;
    match late {
        Ok(_) => Err(CaseError::fail("streaming.token.expires", "the URL still worked after 61 s")),
        Err(e) => {
            ensure!("streaming.token.expires", e.contains("HTTP 4"), "an expired URL must be refused with a 4xx, got: {e}");
            Ok(())
        }
    }
}

async fn token_flood(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let req = exec_req(&id, &["/bin/probe", "true"], OUT_ERR);
    let c = cx.cri().with_deadline(Duration::from_secs(10));
    let mut urls = Vec::new();
    let mut last = None;
    cx.step("1100 Exec calls, no URL used", async {
        for _ in 0..1100 {
            match c.exec(req.clone()).await {
                Ok(r) => urls.push(r.url),
                Err(s) => {
                    last = Some(s);
                    break;
                }
            }
        }
        Ok(())
    })
    .await?;
    // Give the URLs back before judging, so the rest of the run is not refused Exec until
    // they expire, whatever this case concludes.
    let issued = urls.len();
    cx.step("redeem the unused URLs", async {
        futures::stream::iter(urls)
            .map(|u| async move { streaming::discard(&u, Duration::from_secs(5)).await })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        Ok(())
    })
    .await?;
    let Some(s) = last else {
        return Err(CaseError::fail(
            "streaming.token.bounded",
            "1100 unused streaming URLs were all issued: the waiting requests are not bounded",
        ));
    };
    kit::expect_code("streaming.token.bounded", tonic::Code::ResourceExhausted, &s, "Exec past the waiting-URL limit")?;
    cx.step("Exec once the URLs are used", async {
        let r = c.exec(req.clone()).await.map_err(|s| {
            CaseError::fail(
                "streaming.token.slot_freed",
                format!("after {issued} URLs were issued and then used, Exec still fails: {}", s.message()),
            )
        })?;
        let _ = streaming::discard(&r.url, Duration::from_secs(5)).await;
        Ok(())
    })
    .await
}

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "streaming.token.reuse_refused",
        suite: Suite::Conformance,
        summary: "a streaming URL used once is refused the second time",
        reqs: &[TOKEN],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(token_reuse),
    },
    CaseDef {
        id: "streaming.token.expired_refused",
        suite: Suite::Conformance,
        summary: "a streaming URL unused for 61 s is refused",
        reqs: &[TOKEN],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(120),
        run: case_fn!(token_expired),
    },
    CaseDef {
        id: "streaming.token.bounded",
        suite: Suite::Conformance,
        summary: "a flood of Exec calls whose URLs are never used ends in ResourceExhausted, not unbounded memory",
        reqs: &[TOKEN],
        tags: &[Tag::Conformance, Tag::Streaming, Tag::Negative, Tag::Serial],
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(token_flood),
    },
];
