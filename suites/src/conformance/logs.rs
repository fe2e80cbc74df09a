//! Area `logs`: the CRI container log format, streams, partial lines, and ReopenContainerLog.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};

use crate::kit;

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
    CaseDef {
        id: "logs.format.cri_lines",
        suite: Suite::Conformance,
        summary: "every log line is `<RFC3339Nano> <stream> <F|P> <message>` with increasing timestamps",
        reqs: &[LOG_PATH],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(cri_lines),
    },
    CaseDef {
        id: "logs.streams.stdout_stderr",
        suite: Suite::Conformance,
        summary: "stdout and stderr lines are tagged with their stream",
        reqs: &[LOG_PATH],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(streams),
    },
    CaseDef {
        id: "logs.partial.no_newline",
        suite: Suite::Conformance,
        summary: "output that ends without a newline is logged as a partial (P) line",
        reqs: &[LOG_PATH],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(partial_no_newline),
    },
    CaseDef {
        id: "logs.partial.long_line",
        suite: Suite::Conformance,
        summary: "a line longer than 16 KiB is split into P pieces and ends with an F piece",
        reqs: &[LOG_PATH],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(long_line),
    },
    CaseDef {
        id: "logs.reopen.running",
        suite: Suite::Conformance,
        summary: "after the log is moved away, ReopenContainerLog makes the runtime write a new file",
        reqs: &[REOPEN],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(reopen_running),
    },
    CaseDef {
        id: "logs.reopen.stopped",
        suite: Suite::Conformance,
        summary: "ReopenContainerLog on a stopped container either succeeds or fails without creating a file",
        reqs: &[REOPEN],
        tags: &[Tag::Conformance, Tag::Logs, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(reopen_stopped),
    },
];

async fn run_logger(
    cx: &Cx,
    cmd: &[&str],
) -> Result<(String, std::path::PathBuf, cri::ContainerStatus), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (_, pod_cfg, id, config) = kit::pod_with_container(cx, &image, cmd).await?;
    let st = cx
        .step(
            "wait for exit",
            kit::wait_exited(cx, &id, WAIT),
        )
        .await?;
    Ok((id, kit::log_file(&pod_cfg, &config), st))
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
    let (lines, _) = kit::read_log(&log)?;
    ensure_eq!("logs.format.line_count", 20, lines.len(), "log lines");
    let mut last = (i64::MIN, 0);
    for (i, l) in lines.iter().enumerate() {
        ensure_eq!(
            "logs.format.message",
            format!("entry {}", i + 1),
            l.message,
            "message of line {}",
            i + 1
        );
        ensure_eq!("logs.format.tag_full", "F", l.tag, "tag of line {}", i + 1);
        let ts = parse_ts(&l.timestamp).ok_or_else(|| {
            CaseError::fail(
                "logs.format.timestamp_rfc3339",
                format!("line {}: timestamp {:?} is not RFC 3339", i + 1, l.timestamp),
            )
        })?;
        ensure!(
            "logs.format.timestamp_monotonic",
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
    let (lines, by) = kit::read_log(&log)?;
    ensure_eq!("logs.streams.line_count", 6, lines.len(), "log lines");
    ensure_eq!(
        "logs.streams.stdout_equal",
        "both 1\nboth 2\nboth 3\n",
        by.get("stdout").cloned().unwrap_or_default(),
        "stdout"
    );
    ensure_eq!(
        "logs.streams.stderr_equal",
        "both 1\nboth 2\nboth 3\n",
        by.get("stderr").cloned().unwrap_or_default(),
        "stderr"
    );
    Ok(())
}

async fn partial_no_newline(cx: &Cx) -> Result<(), CaseError> {
    let (_, log, _) = run_logger(cx, &["/bin/probe", "echo", "-n", "no-newline"]).await?;
    let (lines, _) = kit::read_log(&log)?;
    let last = lines
        .last()
        .ok_or_else(|| CaseError::fail("logs.partial.log_not_empty", "empty log"))?;
    ensure_eq!(
        "logs.partial.tag_partial",
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
    let (lines, by) = kit::read_log(&log)?;
    ensure!(
        "logs.partial.split",
        lines.len() >= 2,
        "a 40000-byte line was logged as {} entry",
        lines.len()
    );
    ensure!(
        "logs.partial.pieces_partial",
        lines[..lines.len() - 1].iter().all(|l| l.tag == "P"),
        "all but the last piece must be P"
    );
    ensure_eq!(
        "logs.partial.last_piece_full",
        "F",
        lines[lines.len() - 1].tag,
        "tag of the last piece"
    );
    ensure!(
        "logs.partial.piece_size",
        lines.iter().all(|l| l.message.len() <= 16 * 1024),
        "a piece is longer than 16 KiB"
    );
    ensure_eq!(
        "logs.partial.rejoined_length",
        40001,
        by.get("stdout").map(String::len).unwrap_or(0),
        "rejoined length (with the newline)"
    );
    Ok(())
}

async fn reopen_running(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (_, pod_cfg, id, config) = kit::pod_with_container(
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
    let log = kit::log_file(&pod_cfg, &config);
    cx.step(
        "log fills",
        kit::wait_log("container.log.written", &log, "tick", WAIT),
    )
    .await?;
    let rotated = log.with_extension("rotated");
    std::fs::rename(&log, &rotated).map_err(|e| {
        CaseError::harness("harness.log_rotate", format!("rotating the log: {e}"))
    })?;
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
    cx.step(
        "new file fills",
        kit::wait_log("logs.reopen.new_file_written", &log, "tick", WAIT),
    )
    .await?;
    Ok(())
}

async fn reopen_stopped(cx: &Cx) -> Result<(), CaseError> {
    let (id, log, _) = run_logger(cx, &["/bin/probe", "echo", "once"]).await?;
    std::fs::remove_file(&log).map_err(|e| {
        CaseError::fail("container.log.written", format!("removing the log: {e}"))
    })?;
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
            "logs.reopen.error_no_new_file",
            !log.exists(),
            "ReopenContainerLog failed but created a new log file (\"Once it returns error, new container log file MUST NOT be created.\")"
        );
    }
    Ok(())
}
