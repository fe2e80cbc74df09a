//! Area `logs`: the CRI container log format, streams, partial lines, and ReopenContainerLog.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Tag, case_fn, cri, ensure, ensure_eq};

use super::{case, util};

const LOG_PATH: Req = Req {
    rpc: "CreateContainer",
    rule: "Path relative to PodSandboxConfig.LogDirectory for container to store the log (STDOUT and STDERR) on the host.",
};
const REOPEN: Req = Req {
    rpc: "ReopenContainerLog",
    rule: "ReopenContainerLog asks runtime to reopen the stdout/stderr log file for the container. This is often called after the log file has been rotated. If the container is not running, container runtime can choose to either create a new log file and return nil, or return an error. Once it returns error, new container log file MUST NOT be created.",
};
const T: &[Tag] = &[Tag::Conformance, Tag::Logs];
const WAIT: Duration = Duration::from_secs(30);

pub const CASES: &[CaseDef] = &[
    case(
        "logs.format.cri_lines",
        "every log line is `<RFC3339Nano> <stream> <F|P> <message>` with increasing timestamps",
        &[LOG_PATH],
        T,
        &[],
        60,
        case_fn!(cri_lines),
    ),
    case(
        "logs.streams.stdout_stderr",
        "stdout and stderr lines are tagged with their stream",
        &[LOG_PATH],
        T,
        &[],
        60,
        case_fn!(streams),
    ),
    case(
        "logs.partial.no_newline",
        "output that ends without a newline is logged as a partial (P) line",
        &[LOG_PATH],
        T,
        &[],
        60,
        case_fn!(partial_no_newline),
    ),
    case(
        "logs.partial.long_line",
        "a line longer than 16 KiB is split into P pieces and ends with an F piece",
        &[LOG_PATH],
        T,
        &[],
        60,
        case_fn!(long_line),
    ),
    case(
        "logs.reopen.running",
        "after the log is moved away, ReopenContainerLog makes the runtime write a new file",
        &[REOPEN],
        T,
        &[],
        60,
        case_fn!(reopen_running),
    ),
    case(
        "logs.reopen.stopped",
        "ReopenContainerLog on a stopped container either succeeds or fails without creating a file",
        &[REOPEN],
        &[Tag::Conformance, Tag::Logs, Tag::Negative],
        &[],
        60,
        case_fn!(reopen_stopped),
    ),
];

async fn run_logger(
    cx: &Cx,
    cmd: &[&str],
) -> Result<(String, std::path::PathBuf, cri::ContainerStatus), CaseError> {
    let (image, _) = cx.step("pull probe", util::pull(cx, "probe")).await?;
    let (_, pod_cfg, id, config) = util::pod_with_container(cx, &image, cmd).await?;
    let st = cx
        .step(
            "wait for exit",
            util::wait_state(cx, &id, cri::ContainerState::ContainerExited, WAIT),
        )
        .await?;
    Ok((id, util::log_file(&pod_cfg, &config), st))
}

fn parse_ts(ts: &str) -> Option<(i64, u32)> {
    // 2026-01-02T03:04:05.123456789Z (fraction optional, Z or offset).
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
    let frac = frac.split(['+', '-']).next()?;
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().ok()?;
    Some((
        ((y * 12 + mo) * 31 + da) * 86_400 + h * 3600 + mi * 60 + s,
        nanos,
    ))
}

async fn cri_lines(cx: &Cx) -> Result<(), CaseError> {
    let (_, log, _) = run_logger(
        cx,
        &["/bin/probe", "log", "--count", "20", "--text", "entry"],
    )
    .await?;
    let (lines, _) = util::read_log(&log)?;
    ensure_eq!(20, lines.len(), "log lines");
    let mut last = (i64::MIN, 0);
    for (i, l) in lines.iter().enumerate() {
        ensure_eq!(
            format!("entry {}", i + 1),
            l.message,
            "message of line {}",
            i + 1
        );
        ensure_eq!("F", l.tag, "tag of line {}", i + 1);
        let ts = parse_ts(&l.timestamp).ok_or_else(|| {
            CaseError::fail(format!(
                "line {}: timestamp {:?} is not RFC 3339",
                i + 1,
                l.timestamp
            ))
        })?;
        ensure!(
            ts >= last,
            "line {}: timestamp {} goes back in time",
            i + 1,
            l.timestamp
        );
        last = ts;
    }
    Ok(())
}

async fn streams(cx: &Cx) -> Result<(), CaseError> {
    let (_, log, _) = run_logger(
        cx,
        &[
            "/bin/probe",
            "log",
            "--count",
            "3",
            "--stream",
            "both",
            "--text",
            "both",
        ],
    )
    .await?;
    let (lines, by) = util::read_log(&log)?;
    ensure_eq!(6, lines.len(), "log lines");
    ensure_eq!(
        "both 1\nboth 2\nboth 3\n",
        by.get("stdout").cloned().unwrap_or_default(),
        "stdout"
    );
    ensure_eq!(
        "both 1\nboth 2\nboth 3\n",
        by.get("stderr").cloned().unwrap_or_default(),
        "stderr"
    );
    Ok(())
}

async fn partial_no_newline(cx: &Cx) -> Result<(), CaseError> {
    let (_, log, _) = run_logger(cx, &["/bin/probe", "echo", "-n", "no-newline"]).await?;
    let (lines, _) = util::read_log(&log)?;
    let last = lines.last().ok_or_else(|| CaseError::fail("empty log"))?;
    ensure_eq!(
        ("P".to_string(), "no-newline".to_string()),
        (last.tag.clone(), last.message.clone()),
        "(tag, message) of the unterminated line"
    );
    Ok(())
}

async fn long_line(cx: &Cx) -> Result<(), CaseError> {
    let (_, log, _) = run_logger(
        cx,
        &["/bin/probe", "log", "--count", "1", "--size", "40000"],
    )
    .await?;
    let (lines, by) = util::read_log(&log)?;
    ensure!(
        lines.len() >= 2,
        "a 40000-byte line was logged as {} entry",
        lines.len()
    );
    ensure!(
        lines[..lines.len() - 1].iter().all(|l| l.tag == "P"),
        "all but the last piece must be P"
    );
    ensure_eq!("F", lines[lines.len() - 1].tag, "tag of the last piece");
    ensure!(
        lines.iter().all(|l| l.message.len() <= 16 * 1024),
        "a piece is longer than 16 KiB"
    );
    ensure_eq!(
        40001,
        by.get("stdout").map(String::len).unwrap_or(0),
        "rejoined length (with the newline)"
    );
    Ok(())
}

async fn reopen_running(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", util::pull(cx, "probe")).await?;
    let (_, pod_cfg, id, config) = util::pod_with_container(
        cx,
        &image,
        &[
            "/bin/probe",
            "log",
            "--count",
            "0",
            "--every",
            "20",
            "--text",
            "tick",
        ],
    )
    .await?;
    let log = util::log_file(&pod_cfg, &config);
    cx.step("log fills", util::wait_log(&log, "tick", WAIT))
        .await?;
    let rotated = log.with_extension("rotated");
    std::fs::rename(&log, &rotated)
        .map_err(|e| CaseError::fail(format!("rotating the log: {e}")))?;
    cx.step("reopen", async {
        Ok(cx
            .cri()
            .reopen_container_log(cri::ReopenContainerLogRequest {
                container_id: id.clone(),
            })
            .await
            .map(drop)?)
    })
    .await?;
    cx.step("new file fills", util::wait_log(&log, "tick", WAIT))
        .await?;
    Ok(())
}

async fn reopen_stopped(cx: &Cx) -> Result<(), CaseError> {
    let (id, log, _) = run_logger(cx, &["/bin/probe", "echo", "once"]).await?;
    std::fs::remove_file(&log).map_err(|e| CaseError::fail(format!("removing the log: {e}")))?;
    let r = cx
        .step("reopen", async {
            Ok(cx
                .cri()
                .reopen_container_log(cri::ReopenContainerLogRequest {
                    container_id: id.clone(),
                })
                .await)
        })
        .await?;
    if r.is_err() {
        ensure!(
            !log.exists(),
            "ReopenContainerLog failed but created a new log file (\"Once it returns error, new container log file MUST NOT be created.\")"
        );
    }
    Ok(())
}
