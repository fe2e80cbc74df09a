//! Test-only fault switches: deliberate, named misbehaviours of the bundled runtime that prove
//! each conformance case can fail. Enabled only through `CRICKET_RUNTIME_FAULTS` (a comma list);
//! with the variable unset the runtime behaves correctly. Unknown names are refused at start-up.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::http;

/// Environment variable listing the faults to inject.
pub const FAULTS_ENV: &str = "CRICKET_RUNTIME_FAULTS";

macro_rules! faults {
    ($($variant:ident = $name:literal: $what:literal,)+) => {
        /// One deliberate misbehaviour.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Fault { $(#[doc = $what] $variant),+ }

        impl Fault {
            pub const ALL: &'static [(Fault, &'static str, &'static str)] = &[$((Fault::$variant, $name, $what)),+];
        }
    };
}

faults! {
    VersionBadSemver = "version-bad-semver": "Version reports a runtime_version that is not semver",
    VersionWrongApi = "version-wrong-api": "Version reports runtime_api_version v2 on the v1 service",
    StatusNoNetworkReady = "status-no-network-ready": "Status omits the required NetworkReady condition",
    StatusLowercaseReason = "status-lowercase-reason": "Status gives a false condition a reason that is not CamelCase",
    StatusInfoNotJson = "status-info-not-json": "Status(verbose) puts a non-JSON value in info",
    StatusInfoAlways = "status-info-always": "Status returns info also when verbose is false",
    UnknownMethodHangs = "unknown-method-hangs": "a call to an unknown method never answers",
    ListIgnoresState = "list-ignores-state": "ListContainers ignores the state filter",
    StopErrorsWhenExited = "stop-errors-when-exited": "StopContainer of an exited container answers FailedPrecondition",
    ExecDropsStderr = "exec-drops-stderr": "ExecSync returns an empty stderr",
    LogNoPartial = "log-no-partial": "the shim tags unterminated lines F instead of P",
    PodAnnotationsDropped = "pod-annotations-dropped": "PodSandboxStatus and ListPodSandbox return no annotations",
    ImageStatusNoTags = "image-status-no-tags": "ImageStatus returns images without repo_tags",
    RemoveKeepsOtherTags = "remove-keeps-other-tags": "RemoveImage by tag removes only that tag",
    StopIgnoresGrace = "stop-ignores-grace": "StopContainer kills at once, ignoring the grace period",
    StartSlow = "start-slow": "StartContainer waits 100 ms before starting (a regression for benchmarks to catch)",
    StatusImageIdEmpty = "status-image-id-empty": "ContainerStatus leaves image_id empty (as runtimes before cri-api v0.30 do)",
    StatusImageRefTag = "status-image-ref-tag": "ContainerStatus reports the image tag as image_ref instead of a digested reference",
    StatusUserRequestOnly = "status-user-request-only": "ContainerStatus.user lists only the supplemental groups the request named, not the ones the process has",
    DeadlineCancelled = "deadline-cancelled": "a call past its grpc-timeout ends with CANCELLED (tonic's own answer) instead of DEADLINE_EXCEEDED",
    OversizeOutOfRange = "oversize-out-of-range": "a request over the receive limit is answered OUT_OF_RANGE (tonic's own answer) instead of RESOURCE_EXHAUSTED",
    GzipInternal = "gzip-internal": "a gzip-compressed request is answered INTERNAL",
    ConnectionFdsLeak = "connection-fds-leak": "every accepted connection's socket stays open after the client closes it",
    SerialAccept = "serial-accept": "a new connection is served only after the previous one closed",
    BadPrefaceHangs = "bad-preface-hangs": "a connection with a garbage preface is held open instead of closed",
    StreamTokenReusable = "stream-token-reusable": "a streaming URL can be used more than once",
    StreamTokenPrefix = "stream-token-prefix": "the streaming server takes a URL whose token merely begins with an issued one",
    ExecStreamDropsStderr = "exec-stream-drops-stderr": "streaming exec reads the command's stderr and sends nothing",
    ExecLosesExitCode = "exec-loses-exit-code": "streaming exec reports success whatever the exit code",
    ExecResizeIgnored = "exec-resize-ignored": "streaming exec ignores terminal resize events",
    ExecDisconnectLeaks = "exec-disconnect-leaks": "a streaming exec whose client disconnects keeps running, its stdin never closed",
    AttachStdinOnceIgnored = "attach-stdin-once-ignored": "a stdin_once container's stdin stays open after its first attach session",
    AttachSessionClosesStdin = "attach-session-closes-stdin": "the end of any attach session closes the container's stdin, stdin_once or not",
    AttachIgnoresConfig = "attach-ignores-config": "Attach accepts a tty or stdin that the container was not created with",
    AttachMergesStderr = "attach-merges-stderr": "attach sends the container's stderr on the stdout stream",
    PortForwardSilentError = "port-forward-silent-error": "port-forward over SPDY says nothing on the error stream when the pod's port cannot be reached",
    PortForwardTruncates = "port-forward-truncates": "port-forward cuts what the pod sends after 64 KiB",
    WsBase64AsBinary = "ws-base64-as-binary": "exec over WebSocket frames v4.base64.channel.k8s.io sessions as binary",
    WsIgnoresStreamClose = "ws-ignores-stream-close": "exec over WebSocket v5 ignores [255, channel], so stdin never ends",
    WsNoPortPrefix = "ws-no-port-prefix": "port-forward over WebSocket leaves out the port prefix on its channels",
    PasswdViaHost = "passwd-via-host": "CreateContainer reads the image's /etc/passwd and /etc/group by host path, following the image's symlinks out of its rootfs",
    CapsNotDropped = "caps-not-dropped": "containers keep every capability: the bounding, effective and permitted sets are never cut",
    NoNewPrivsIgnored = "no-new-privs-ignored": "no_new_privs in the security context is not applied",
    MaskedPathsIgnored = "masked-paths-ignored": "masked_paths (and containerd's defaults) are not masked",
    ExecNotConfined = "exec-not-confined": "exec'd commands run with the runtime's capabilities, not the container's",
    StopSignalOnce = "stop-signal-once": "StopContainer sends the stop signal once, even when a PID-1 container's kernel dropped it",
    PidTargetUnchecked = "pid-target-unchecked": "pid TARGET joins any container's namespace, in another pod or shared with its pod",
    SeccompNotLoaded = "seccomp-not-loaded": "no seccomp filter is loaded, whatever profile the container asks for",
    SeccompDefaultIgnoresCaps = "seccomp-default-ignores-caps": "the default seccomp profile is built as if the container held every capability",
    SeccompErrorsUnconfined = "seccomp-errors-unconfined": "a seccomp profile that cannot be used (missing, not JSON, bad path) leaves the container unconfined instead of failing CreateContainer",
    SeccompUnknownNamesSkipped = "seccomp-unknown-names-skipped": "system calls a profile names that no architecture has are skipped, as runc skips them, instead of refused",
    HostIpcIgnored = "host-ipc-ignored": "a pod asking for the host's IPC namespace (NODE) gets one of its own",
    HostNetworkIgnored = "host-network-ignored": "a pod asking for the host's network namespace (NODE) gets one of its own",
    PodIpcIsHost = "pod-ipc-is-host": "every pod shares the host's IPC namespace, whatever it asks for",
    PodNetworkIsHost = "pod-network-is-host": "every pod shares the host's network namespace, whatever it asks for",
    HostPidIgnored = "host-pid-ignored": "a container asking for the host's PID namespace (NODE) gets one of its own",
    MountPropagationIgnored = "mount-propagation-ignored": "every host-path mount is rprivate, whatever propagation the request asks for",
    BidirectionalOneWay = "bidirectional-one-way": "a PROPAGATION_BIDIRECTIONAL mount is made rslave: host mounts reach the container, the container's never reach the host",
    MountPrivateIsSlave = "mount-private-is-slave": "a PROPAGATION_PRIVATE mount is left rslave: host mounts made later appear in the container",
    MountPropagationUnchecked = "mount-propagation-unchecked": "HOST_TO_CONTAINER and BIDIRECTIONAL are accepted for a host path on a private mount",
    RecursiveReadonlyTopOnly = "recursive-readonly-top-only": "a recursive_read_only mount is read-only at its top only; submounts stay writable",
    MountMissingCreated = "mount-missing-created": "a host path that does not exist is created as a directory (containerd's way) instead of refused",
    OomNotReported = "oom-not-reported": "a container the kernel OOM-killed is reported with reason Error",
    StrictGroupsMerged = "strict-groups-merged": "supplemental_groups_policy Strict is treated as Merge: the image's /etc/group memberships are added",
    GroupWithoutUserAccepted = "group-without-user-accepted": "run_as_group without run_as_user or run_as_username is accepted (the group is applied to the image's user)",
    UserAndUsernameAccepted = "user-and-username-accepted": "run_as_user together with run_as_username is accepted (run_as_user wins)",
    ApparmorLocalhostAccepted = "apparmor-localhost-accepted": "a Localhost AppArmor profile is accepted and silently not applied",
    ApparmorDefaultRefused = "apparmor-default-refused": "AppArmor RuntimeDefault is refused on a host without AppArmor",
    SelinuxOptionsRefused = "selinux-options-refused": "selinux_options are refused on a host without SELinux",
    UsernsModeUnchecked = "userns-mode-unchecked": "userns_options modes other than NODE (CONTAINER, TARGET, POD without mappings) are accepted and run in the host's user namespace",
    PodIpMissing = "pod-ip-missing": "PodSandboxStatus reports no IP for a pod that has one",
    PodEthDown = "pod-eth-down": "the pod's eth0 is addressed but left down, without a default route",
    HostPortsIgnored = "host-ports-ignored": "port mappings with a host port are accepted and nothing listens on the host",
    HostIpIgnored = "host-ip-ignored": "a port mapping's host_ip is ignored: the host port listens on every address",
    HostPortZeroMapsContainerPort = "host-port-zero-maps-container-port": "a port mapping with host_port 0 maps the container port's number on the host",
    HostPortsKept = "host-ports-kept": "StopPodSandbox leaves the pod's host ports listening",
    NetworkReadyWithoutNetwork = "network-ready-without-network": "Status says NetworkReady while pods get loopback only",
    NoAuthorityFix = "no-authority-fix": "the socket is served by plain h2: a local client's socket-path :authority is reset with PROTOCOL_ERROR",
}

/// The set of enabled faults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults(Vec<Fault>);

impl Faults {
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut v = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match Fault::ALL.iter().find(|(_, n, _)| *n == name) {
                Some((f, _, _)) => v.push(*f),
                None => {
                    let known: Vec<&str> = Fault::ALL.iter().map(|(_, n, _)| *n).collect();
                    return Err(format!(
                        "unknown fault {name:?} in {FAULTS_ENV} (known: {})",
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(Self(v))
    }

    /// Reads `CRICKET_RUNTIME_FAULTS`; unset means no faults.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(FAULTS_ENV) {
            Ok(v) => Self::parse(&v),
            Err(std::env::VarError::NotPresent) => Ok(Self::default()),
            Err(e) => Err(format!("{FAULTS_ENV}: {e}")),
        }
    }

    pub fn has(&self, f: Fault) -> bool {
        self.0.contains(&f)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Wraps the gRPC router so a request for a method outside the CRI API never gets an answer
/// (fault `unknown-method-hangs`). Without the fault it is a pass-through.
#[derive(Clone)]
pub struct HangUnknown<S> {
    inner: S,
    on: bool,
}

impl<S> HangUnknown<S> {
    pub fn layer(on: bool) -> impl tower::Layer<S, Service = HangUnknown<S>> + Clone {
        tower::layer::layer_fn(move |inner| HangUnknown { inner, on })
    }
}

fn known_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/runtime.v1.") else {
        return false;
    };
    let Some((service, method)) = rest.split_once('/') else {
        return false;
    };
    cricket_proto::RPCS
        .iter()
        .any(|(s, m)| *s == service && *m == method)
}

impl<S, B> tower::Service<http::Request<B>> for HangUnknown<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if self.on && !known_path(req.uri().path()) {
            return Box::pin(std::future::pending());
        }
        Box::pin(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_refuses_unknown_names() {
        let f = Faults::parse("version-bad-semver, status-info-not-json").expect("known");
        assert!(f.has(Fault::VersionBadSemver) && f.has(Fault::StatusInfoNotJson));
        assert!(!f.has(Fault::StatusInfoAlways));
        assert!(Faults::parse("").expect("empty").is_empty());
        let err = Faults::parse("no-such-fault").expect_err("unknown");
        assert!(
            err.contains("no-such-fault") && err.contains("version-bad-semver"),
            "{err}"
        );
    }

    #[test]
    fn known_paths_are_the_cri_methods() {
        assert!(known_path("/runtime.v1.RuntimeService/Version"));
        assert!(known_path("/runtime.v1.ImageService/PullImage"));
        assert!(!known_path(
            "/runtime.v1.RuntimeService/CricketNoSuchMethod"
        ));
        assert!(!known_path("/runtime.v1alpha2.RuntimeService/Version"));
    }
}
