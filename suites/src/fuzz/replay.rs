//! `cricket fuzz --replay FILE`: the saved input once more, judged by the same oracles. A
//! finding file cricket cannot read is cricket's problem, not the runtime's.

use std::path::Path;
use std::time::Duration;

use cricket_harness::{CaseError, Cx, cri};

use super::finding::{Finding, oracle};
use super::rpcs;
use super::wire::Conn;
use super::{call, judge};

pub(super) async fn replay(cx: &Cx, socket: &Path, path: &Path) -> Result<(), CaseError> {
    let f = Finding::load(path).map_err(|e| CaseError::harness("harness.replay", e))?;
    let Some(rpc) = rpcs::by_method(&f.rpc) else {
        return Err(CaseError::harness(
            "harness.replay",
            format!("{}: unknown RPC {}", path.display(), f.rpc),
        ));
    };
    let body = f
        .body()
        .map_err(|e| CaseError::harness("harness.replay", e))?;
    let conn = Conn::connect(socket)
        .await
        .map_err(|e| CaseError::fail("fuzz.connect", e))?;
    let answer = call(&conn, rpc, body).await;
    cx.note("replay", path.display().to_string());
    cx.note(
        "answer",
        format!("{answer:?}").chars().take(300).collect::<String>(),
    );
    let alive = cx
        .cri()
        .with_deadline(Duration::from_secs(5))
        .version(cri::VersionRequest {
            version: "0.1.0".into(),
        })
        .await;
    match (judge(rpc, &answer), alive) {
        (Some((o, class, detail)), _) => Err(CaseError::fail(
            oracle::check(o),
            format!(
                "replay of {} reproduces [{o}] {} {class}: {detail}\n  request: {}",
                path.display(),
                f.rpc,
                f.request
            ),
        )),
        (None, Err(s)) => Err(CaseError::fail(
            oracle::check(oracle::ALIVE),
            format!(
                "replay of {}: the runtime no longer answers Version: {s}",
                path.display()
            ),
        )),
        (None, Ok(_)) => Ok(()),
    }
}
