//! The case model: what a case declares (id, requirements, tags, needs, timeout) and what it
//! can conclude. Tags and needs are closed enums, so a typo is a compile error, not a string
//! that silently matches nothing.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::cx::Cx;
use crate::failure::CaseError;

/// Which suite a case belongs to (`--suite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    Conformance,
    Property,
    Fuzz,
    Bench,
}

impl Suite {
    pub const ALL: [Suite; 4] = [
        Suite::Conformance,
        Suite::Property,
        Suite::Fuzz,
        Suite::Bench,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Suite::Conformance => "conformance",
            Suite::Property => "property",
            Suite::Fuzz => "fuzz",
            Suite::Bench => "bench",
        }
    }

    pub fn parse(s: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! closed_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.name() == s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

closed_enum! {
    /// What kind of behaviour a case checks (`--tags`). `serial` marks a case that strains a
    /// limit the whole runtime shares (the waiting streaming URLs, say): the runner runs it
    /// with no other case in flight.
    Tag {
        Conformance = "conformance",
        Lifecycle = "lifecycle",
        Negative = "negative",
        Idempotence = "idempotence",
        Concurrency = "concurrency",
        Streaming = "streaming",
        Security = "security",
        Network = "network",
        Image = "image",
        Stats = "stats",
        Logs = "logs",
        Events = "events",
        Transport = "transport",
        Serial = "serial",
    }
}

closed_enum! {
    /// A capability of the host or target a case cannot run without (`pod-network`: the target
    /// reports NetworkReady=true). An unmet need turns the
    /// case into a skip that names the need.
    Need {
        Root = "root",
        Cgroups = "cgroups",
        HostNetwork = "host-network",
        Seccomp = "seccomp",
        Apparmor = "apparmor",
        Selinux = "selinux",
        Userns = "userns",
        PodNetwork = "pod-network",
    }
}

/// One rule from `api.proto` a case enforces: the RPC and the sentence, quoted.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Req {
    pub rpc: &'static str,
    pub rule: &'static str,
}

/// The body of a case. It borrows its context for the duration of the run; the runner keeps
/// what is needed for cleanup outside of it, so a timed-out case is dropped and still cleaned.
pub type CaseFn = for<'a> fn(&'a Cx) -> BoxFuture<'a, Result<(), CaseError>>;

/// A registered case.
#[derive(Clone, Copy)]
pub struct CaseDef {
    /// Stable dotted id `<area>.<object>.<behavior>`; never reused for another meaning.
    pub id: &'static str,
    pub suite: Suite,
    /// One line for `cricket list` and reports.
    pub summary: &'static str,
    pub reqs: &'static [Req],
    pub tags: &'static [Tag],
    pub needs: &'static [Need],
    pub timeout: Duration,
    pub run: CaseFn,
}

impl CaseDef {
    /// The first component of the id: JUnit classnames and report grouping use it.
    pub fn area(&self) -> &'static str {
        self.id.split('.').next().unwrap_or(self.id)
    }
}

impl fmt::Debug for CaseDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaseDef")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Wraps an `async fn(&Cx) -> Result<(), CaseError>` into a [`CaseFn`].
#[macro_export]
macro_rules! case_fn {
    ($f:path) => {{
        fn __cricket_case(cx: &$crate::Cx) -> $crate::BoxFuture<'_, Result<(), $crate::CaseError>> {
            Box::pin($f(cx))
        }
        __cricket_case as $crate::CaseFn
    }};
}
