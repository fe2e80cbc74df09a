//! The CRI building blocks every suite uses (conformance, property, fuzz, bench): objects made
//! the way the run labels and names them, lifecycle calls, waits with deadlines, and container
//! logs. Nothing here decides whether a runtime passes a rule except the checks each helper
//! names for what it needs to carry on (a status that must be present, a log that must parse).

pub mod kubelet;
pub mod logs;
pub mod objects;
pub mod raw_h2;
pub mod remote;
pub mod wait;

pub use logs::{LogLine, log_file, parse_log, read_log};
pub use objects::*;
pub use wait::{wait_exited, wait_log, wait_running, wait_state};
