//! A seccomp profile in the OCI runtime-spec shape (`linux.seccomp`, which is also what
//! containerd reads from a Localhost profile file and what Docker's profiles are) and its
//! compilation into BPF programs the kernel loads.
//!
//! seccompiler builds programs with one action on match and one on mismatch, while a profile
//! gives each rule its own action. The kernel runs every loaded filter and keeps the most
//! restrictive answer, so a profile becomes a stack: one filter answers the default action to
//! any call no rule names (and "allow" to the rest), then one filter per other action answers
//! it to the calls of its rules (and "allow" to the rest). A call named by rules of two actions
//! gets the stricter one, where libseccomp would take the rule added last; profiles do not
//! do that in practice.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::Deserialize;

use super::table;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub listener_path: String,
    #[serde(default)]
    pub syscalls: Vec<Syscalls>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscalls {
    #[serde(default)]
    pub names: Vec<String>,
    /// Docker's older profiles name one call per entry.
    #[serde(default)]
    pub name: Option<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u8,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// The flags a filter is loaded with (`seccomp(2)`'s SECCOMP_FILTER_FLAG_*).
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;

/// Compiled filters, loaded in order, and the flags to load them with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compiled {
    pub programs: Vec<BpfProgram>,
    pub flags: u32,
}

/// Why a profile cannot be used: the message names the offending value.
pub type Error = String;

/// EPERM: what libseccomp (and so runc and containerd) answers for SCMP_ACT_ERRNO and
/// SCMP_ACT_TRACE without an errnoRet.
const EPERM: u32 = 1;

fn action(name: &str, errno: Option<u32>) -> Result<SeccompAction, Error> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(EPERM)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_LOG" => SeccompAction::Log,
        "SCMP_ACT_TRACE" => SeccompAction::Trace(errno.unwrap_or(EPERM)),
        "SCMP_ACT_NOTIFY" => {
            return Err(
                "action SCMP_ACT_NOTIFY needs a seccomp agent, which this runtime does not run"
                    .into(),
            );
        }
        other => return Err(format!("unknown seccomp action {other:?}")),
    })
}

/// How strict an action is, in the kernel's order of precedence (higher wins).
fn strictness(a: &SeccompAction) -> u8 {
    match a {
        SeccompAction::KillProcess => 6,
        SeccompAction::KillThread => 5,
        SeccompAction::Trap => 4,
        SeccompAction::Errno(_) => 3,
        SeccompAction::Trace(_) => 2,
        SeccompAction::Log => 1,
        SeccompAction::Allow => 0,
    }
}

fn condition(call: &str, a: &Arg) -> Result<SeccompCondition, Error> {
    let op = match a.op.as_str() {
        "SCMP_CMP_EQ" => SeccompCmpOp::Eq,
        "SCMP_CMP_NE" => SeccompCmpOp::Ne,
        "SCMP_CMP_LT" => SeccompCmpOp::Lt,
        "SCMP_CMP_LE" => SeccompCmpOp::Le,
        "SCMP_CMP_GT" => SeccompCmpOp::Gt,
        "SCMP_CMP_GE" => SeccompCmpOp::Ge,
        // libseccomp: (arg & value) == valueTwo.
        "SCMP_CMP_MASKED_EQ" => SeccompCmpOp::MaskedEq(a.value),
        other => return Err(format!("{call}: unknown argument comparison {other:?}")),
    };
    let value = if matches!(op, SeccompCmpOp::MaskedEq(_)) {
        a.value_two
    } else {
        a.value
    };
    SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| format!("{call}: argument {}: {e}", a.index))
}

const ARCHES: &[&str] = &[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
];

/// Compiles `p` for x86_64; `skip_unknown` is the fault switch that skips names no
/// architecture has instead of refusing them. Calls of other architectures' ABIs (a 32-bit x86 binary) are not
/// matched by these programs: seccompiler's architecture check kills the process.
pub fn compile(p: &Profile, skip_unknown: bool) -> Result<Compiled, Error> {
    if !cfg!(target_arch = "x86_64") {
        return Err("seccomp profiles are compiled for x86_64 only in this runtime".into());
    }
    if let Some(bad) = p
        .architectures
        .iter()
        .find(|a| !ARCHES.contains(&a.as_str()))
    {
        return Err(format!("unknown seccomp architecture {bad:?}"));
    }
    if !p.listener_path.is_empty() {
        return Err("listenerPath needs a seccomp agent, which this runtime does not run".into());
    }
    let mut flags = 0;
    for f in &p.flags {
        flags |= match f.as_str() {
            "SECCOMP_FILTER_FLAG_LOG" => FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => FLAG_SPEC_ALLOW,
            // Every thread of the container's process is its own: nothing to synchronise.
            "SECCOMP_FILTER_FLAG_TSYNC" => 0,
            other => return Err(format!("unsupported seccomp flag {other:?}")),
        };
    }
    let default = action(&p.default_action, p.default_errno_ret)?;
    // Rules by action, then by call number: the key is the action's raw return value so
    // different errnos stay apart.
    let mut by_action: BTreeMap<u32, (SeccompAction, Rules)> = BTreeMap::new();
    for entry in &p.syscalls {
        let act = action(&entry.action, entry.errno_ret)?;
        let names = entry.names.iter().chain(entry.name.iter());
        for name in names {
            let nr = match table::number(name) {
                Some(nr) => nr,
                None if skip_unknown || table::elsewhere(name) => continue,
                None => return Err(format!("unknown system call {name:?}")),
            };
            if act == default {
                continue;
            }
            let rules = &mut by_action
                .entry(u32::from(act.clone()))
                .or_insert_with(|| (act.clone(), BTreeMap::new()))
                .1;
            let when = if entry.args.is_empty() {
                None
            } else {
                let conds = entry
                    .args
                    .iter()
                    .map(|a| condition(name, a))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(vec![
                    SeccompRule::new(conds).map_err(|e| format!("{name}: {e}"))?,
                ])
            };
            add(rules, nr, when);
        }
    }
    let arch = TargetArch::x86_64;
    let mut programs = Vec::new();
    if default != SeccompAction::Allow {
        // Anything a rule names is not the default's: "allow" here, the rule's own filter
        // below decides.
        let mut named = Rules::new();
        for (_, rules) in by_action.values() {
            for (nr, when) in rules {
                add(&mut named, *nr, when.clone());
            }
        }
        programs.push(program(named, default.clone(), SeccompAction::Allow, arch)?);
    }
    let mut others: Vec<_> = by_action
        .into_values()
        .filter(|(a, _)| *a != SeccompAction::Allow)
        .collect();
    // The order never changes which action wins (the kernel keeps the strictest); when two
    // filters of one action class (two errnos) match a call, the one loaded last reports.
    others.sort_by_key(|(a, _)| std::cmp::Reverse(strictness(a)));
    for (act, rules) in others {
        programs.push(program(rules, SeccompAction::Allow, act, arch)?);
    }
    Ok(Compiled { programs, flags })
}

/// Per call number: `None` matches every call of it, `Some` only calls whose arguments meet
/// one of the rules.
type Rules = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn add(rules: &mut Rules, nr: i64, when: Option<Vec<SeccompRule>>) {
    match (rules.get_mut(&nr), when) {
        (None, w) => {
            rules.insert(nr, w);
        }
        (Some(slot), None) => *slot = None,
        (Some(Some(have)), Some(more)) => have.extend(more),
        (Some(None), Some(_)) => {}
    }
}

fn program(
    rules: Rules,
    mismatch: SeccompAction,
    on_match: SeccompAction,
    arch: TargetArch,
) -> Result<BpfProgram, Error> {
    // seccompiler's empty chain is "no condition".
    let rules = rules
        .into_iter()
        .map(|(nr, when)| (nr, when.unwrap_or_default()))
        .collect();
    let filter = SeccompFilter::new(rules, mismatch, on_match, arch).map_err(|e| e.to_string())?;
    let prog: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    if prog.len() > u16::MAX as usize {
        return Err(format!(
            "the profile compiles to {} BPF instructions, more than the kernel loads",
            prog.len()
        ));
    }
    Ok(prog)
}
