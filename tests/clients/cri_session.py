"""A crictl-like session against a CRI runtime, driven by Python's grpcio: a gRPC client
cricket did not write (gRPC core, the C++ stack behind Python, Ruby and PHP clients).

Run by tests/python_client.rs with stubs generated from cricket's vendored api.proto:

    python cri_session.py --stubs DIR --socket /run/x.sock --image REF --log-dir DIR \
        --label cricket.run=ID [--authority default|path]

`--authority path` sends the raw socket path as :authority, as grpc-go dialled with a bare
path does (older kubelets, crictl, critest); `default` is what grpcio sends by itself (the
percent-encoded path). Every reply is checked; the first wrong one ends the session with a
line naming the step, and exit status 1.
"""

import argparse
import atexit
import os
import re
import sys
import time


def fail(step, what):
    print(f"FAIL [{step}] {what}", flush=True)
    sys.exit(1)


def check(step, cond, what):
    if not cond:
        fail(step, what)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stubs", required=True)
    p.add_argument("--socket", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--log-dir", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--authority", choices=["default", "path"], default="default")
    a = p.parse_args()
    sys.path.insert(0, a.stubs)
    import grpc  # noqa: E402
    import api_pb2 as pb  # noqa: E402
    import api_pb2_grpc as rpc  # noqa: E402

    options = [("grpc.max_receive_message_length", 16 << 20)]
    if a.authority == "path":
        options.append(("grpc.default_authority", a.socket))
    channel = grpc.insecure_channel("unix://" + a.socket, options=options)
    rt = rpc.RuntimeServiceStub(channel)
    im = rpc.ImageServiceStub(channel)
    label_key, label_value = a.label.split("=", 1)
    labels = {label_key: label_value, "cricket.case": "python_session"}
    t = 30

    calls = [0]

    def call(step, fn, req):
        calls[0] += 1
        try:
            return fn(req, timeout=t)
        except grpc.RpcError as e:
            fail(step, f"{e.code()}: {e.details()}")

    v = call("Version", rt.Version, pb.VersionRequest(version="v1"))
    check("Version", v.runtime_api_version == "v1", f"runtime_api_version {v.runtime_api_version!r}")
    check("Version", v.runtime_name != "" and v.runtime_version != "", f"{v}")

    st = call("Status", rt.Status, pb.StatusRequest())
    conds = {c.type: c.status for c in st.status.conditions}
    check("Status", conds.get("RuntimeReady") is True, f"conditions {conds}")
    check("Status", "NetworkReady" in conds, f"conditions {conds}")

    pulled = call("PullImage", im.PullImage, pb.PullImageRequest(image=pb.ImageSpec(image=a.image)))
    check("PullImage", pulled.image_ref.startswith("sha256:"), f"image_ref {pulled.image_ref!r}")

    ist = call("ImageStatus", im.ImageStatus, pb.ImageStatusRequest(image=pb.ImageSpec(image=a.image)))
    check("ImageStatus", ist.image.id == pulled.image_ref, f"id {ist.image.id!r} vs {pulled.image_ref!r}")
    check("ImageStatus", a.image in ist.image.repo_tags, f"repo_tags {list(ist.image.repo_tags)}")
    check("ImageStatus", ist.image.size > 0, f"size {ist.image.size}")

    li = call("ListImages", im.ListImages, pb.ListImagesRequest())
    check("ListImages", any(i.id == pulled.image_ref for i in li.images), "pulled image not listed")

    os.makedirs(a.log_dir, exist_ok=True)
    pod_cfg = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="python-pod", uid="python-uid-" + label_value, namespace="cricket", attempt=0),
        hostname="python-pod",
        log_directory=a.log_dir,
        labels=labels,
        annotations={"from": "grpcio"},
        linux=pb.LinuxPodSandboxConfig(),
    )
    pod = call("RunPodSandbox", rt.RunPodSandbox, pb.RunPodSandboxRequest(config=pod_cfg)).pod_sandbox_id
    check("RunPodSandbox", pod != "", "empty pod_sandbox_id")

    def leave_nothing():
        # A session that failed midway still removes its pod (and with it every container,
        # as RemovePodSandbox must); after a complete session this is the idempotent repeat.
        try:
            rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=t)
        except grpc.RpcError:
            pass

    atexit.register(leave_nothing)

    ps = call("PodSandboxStatus", rt.PodSandboxStatus, pb.PodSandboxStatusRequest(pod_sandbox_id=pod)).status
    check("PodSandboxStatus", ps.id == pod, f"id {ps.id}")
    check("PodSandboxStatus", ps.state == pb.SANDBOX_READY, f"state {ps.state}")
    check("PodSandboxStatus", ps.metadata.name == "python-pod", f"metadata {ps.metadata}")
    check("PodSandboxStatus", dict(ps.labels) == labels, f"labels {dict(ps.labels)}")
    check("PodSandboxStatus", dict(ps.annotations) == {"from": "grpcio"}, f"annotations {dict(ps.annotations)}")

    ctr_cfg = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="python-ctr", attempt=0),
        image=pb.ImageSpec(image=a.image),
        command=["/bin/probe", "log", "--count", "100000", "--every", "200", "--text", "tick from python"],
        labels=labels,
        log_path="python-ctr.log",
        linux=pb.LinuxContainerConfig(),
    )
    ctr = call(
        "CreateContainer",
        rt.CreateContainer,
        pb.CreateContainerRequest(pod_sandbox_id=pod, config=ctr_cfg, sandbox_config=pod_cfg),
    ).container_id
    check("CreateContainer", ctr != "", "empty container_id")
    call("StartContainer", rt.StartContainer, pb.StartContainerRequest(container_id=ctr))

    cs = call("ContainerStatus", rt.ContainerStatus, pb.ContainerStatusRequest(container_id=ctr)).status
    check("ContainerStatus", cs.state == pb.CONTAINER_RUNNING, f"state {cs.state}")
    check("ContainerStatus", cs.image_id == pulled.image_ref, f"image_id {cs.image_id!r}")
    check("ContainerStatus", cs.started_at >= cs.created_at > 0, f"created {cs.created_at} started {cs.started_at}")

    by_pod = call(
        "ListContainers(pod)",
        rt.ListContainers,
        pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=pod)),
    ).containers
    check("ListContainers(pod)", [c.id for c in by_pod] == [ctr], f"{[c.id for c in by_pod]}")
    running = call(
        "ListContainers(running, label)",
        rt.ListContainers,
        pb.ListContainersRequest(
            filter=pb.ContainerFilter(
                state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING),
                label_selector={label_key: label_value},
            )
        ),
    ).containers
    check("ListContainers(running, label)", ctr in [c.id for c in running], "running container not listed")
    exited = call(
        "ListContainers(exited)",
        rt.ListContainers,
        pb.ListContainersRequest(
            filter=pb.ContainerFilter(id=ctr, state=pb.ContainerStateValue(state=pb.CONTAINER_EXITED))
        ),
    ).containers
    check("ListContainers(exited)", exited == [], "a running container listed as exited")

    out = call("ExecSync(stdout)", rt.ExecSync, pb.ExecSyncRequest(container_id=ctr, cmd=["/bin/probe", "echo", "hello", "grpcio"], timeout=10))
    check("ExecSync(stdout)", (out.stdout, out.stderr, out.exit_code) == (b"hello grpcio\n", b"", 0), f"{out}")
    err = call("ExecSync(stderr)", rt.ExecSync, pb.ExecSyncRequest(container_id=ctr, cmd=["/bin/probe", "echo", "--stderr", "oops"], timeout=10))
    check("ExecSync(stderr)", (err.stdout, err.stderr, err.exit_code) == (b"", b"oops\n", 0), f"{err}")
    code = call("ExecSync(exit)", rt.ExecSync, pb.ExecSyncRequest(container_id=ctr, cmd=["/bin/probe", "exit", "3"], timeout=10))
    check("ExecSync(exit)", code.exit_code == 3, f"exit_code {code.exit_code}")

    # A security context as kubelet encodes one for a hardened pod, sent by grpcio: the
    # runtime must read every field off the wire and enforce it inside the container.
    sec_cfg = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="python-sec", attempt=0),
        image=pb.ImageSpec(image=a.image),
        command=["/bin/probe", "pause"],
        labels=labels,
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                capabilities=pb.Capability(drop_capabilities=["ALL"], add_capabilities=["NET_BIND_SERVICE"]),
                no_new_privs=True,
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD),
                masked_paths=["/proc/timer_list"],
                readonly_paths=["/proc/sys"],
                # RuntimeDefault is enum value 0: what goes on the wire is an empty message,
                # and its presence alone asks for the default profile.
                seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
            )
        ),
    )
    sec = call(
        "CreateContainer(security)",
        rt.CreateContainer,
        pb.CreateContainerRequest(pod_sandbox_id=pod, config=sec_cfg, sandbox_config=pod_cfg),
    ).container_id
    call("StartContainer(security)", rt.StartContainer, pb.StartContainerRequest(container_id=sec))
    st = call("ExecSync(security status)", rt.ExecSync, pb.ExecSyncRequest(container_id=sec, cmd=["/bin/probe", "proc", "CapBnd", "CapEff", "NoNewPrivs", "Seccomp"], timeout=10))
    want = b"CapBnd:\t0000000000000400\nCapEff:\t0000000000000400\nNoNewPrivs:\t1\nSeccomp:\t2\n"
    check("ExecSync(security status)", (st.stdout, st.exit_code) == (want, 0), f"{st}")
    for cmd, expect in [
        (["/bin/probe", "cat", "/proc/1/cmdline"], b"/bin/probe\0pause\0"),
        (["/bin/probe", "try", "read", "/proc/timer_list"], b"read ok 0\n"),
        (["/bin/probe", "try", "write", "/proc/sys/kernel/domainname"], b"write EROFS\n"),
        (["/bin/probe", "try", "sethostname", "python"], b"sethostname EPERM\n"),
    ]:
        r = call(f"ExecSync({cmd[1]} {cmd[-1]})", rt.ExecSync, pb.ExecSyncRequest(container_id=sec, cmd=cmd, timeout=10))
        check(f"ExecSync({cmd[1]} {cmd[-1]})", (r.stdout, r.exit_code) == (expect, 0), f"{r}")
    call("StopContainer(security)", rt.StopContainer, pb.StopContainerRequest(container_id=sec, timeout=10))
    cs = call("ContainerStatus(security stopped)", rt.ContainerStatus, pb.ContainerStatusRequest(container_id=sec)).status
    check("ContainerStatus(security stopped)", cs.exit_code == 0, f"PID 1 should exit 0 on SIGTERM, got {cs.exit_code} ({cs.reason})")
    call("RemoveContainer(security)", rt.RemoveContainer, pb.RemoveContainerRequest(container_id=sec))
    bad_cfg = pb.ContainerConfig()
    bad_cfg.CopyFrom(sec_cfg)
    bad_cfg.metadata.name = "python-bad-cap"
    bad_cfg.linux.security_context.capabilities.add_capabilities[:] = ["NET_FLY"]
    try:
        rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod, config=bad_cfg, sandbox_config=pod_cfg), timeout=t)
        fail("CreateContainer(unknown capability)", "a container asking for capability NET_FLY was created")
    except grpc.RpcError as e:
        check("CreateContainer(unknown capability)", e.code() == grpc.StatusCode.INVALID_ARGUMENT and "NET_FLY" in e.details(), f"{e.code()}: {e.details()}")

    stats = call("ContainerStats", rt.ContainerStats, pb.ContainerStatsRequest(container_id=ctr)).stats
    check("ContainerStats", stats.attributes.id == ctr, f"attributes {stats.attributes}")
    check("ContainerStats", stats.memory.working_set_bytes.value > 0, f"memory {stats.memory}")
    check("ContainerStats", stats.cpu.timestamp > 0, f"cpu {stats.cpu}")

    log = os.path.join(a.log_dir, "python-ctr.log")
    line_re = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) stdout F tick from python \d+$")
    deadline = time.time() + 10
    text = ""
    while time.time() < deadline:
        if os.path.exists(log):
            text = open(log, encoding="utf-8", errors="replace").read()
            if "tick from python" in text:
                break
        time.sleep(0.05)
    lines = [l for l in text.splitlines() if l]
    check("container log", lines != [], f"{log} is empty or missing")
    check("container log", all(line_re.match(l) for l in lines), f"not CRI format: {lines[:3]}")

    call("StopContainer", rt.StopContainer, pb.StopContainerRequest(container_id=ctr, timeout=2))
    cs = call("ContainerStatus(stopped)", rt.ContainerStatus, pb.ContainerStatusRequest(container_id=ctr)).status
    check("ContainerStatus(stopped)", cs.state == pb.CONTAINER_EXITED, f"state {cs.state}")
    check("ContainerStatus(stopped)", cs.finished_at >= cs.started_at, f"finished {cs.finished_at}")
    call("StopContainer(again)", rt.StopContainer, pb.StopContainerRequest(container_id=ctr, timeout=2))
    call("RemoveContainer", rt.RemoveContainer, pb.RemoveContainerRequest(container_id=ctr))
    try:
        rt.ContainerStatus(pb.ContainerStatusRequest(container_id=ctr), timeout=t)
        fail("ContainerStatus(removed)", "a removed container still has a status")
    except grpc.RpcError as e:
        check("ContainerStatus(removed)", e.code() == grpc.StatusCode.NOT_FOUND, f"{e.code()}: {e.details()}")

    call("StopPodSandbox", rt.StopPodSandbox, pb.StopPodSandboxRequest(pod_sandbox_id=pod))
    ps = call("PodSandboxStatus(stopped)", rt.PodSandboxStatus, pb.PodSandboxStatusRequest(pod_sandbox_id=pod)).status
    check("PodSandboxStatus(stopped)", ps.state == pb.SANDBOX_NOTREADY, f"state {ps.state}")
    call("RemovePodSandbox", rt.RemovePodSandbox, pb.RemovePodSandboxRequest(pod_sandbox_id=pod))
    call("RemovePodSandbox(again)", rt.RemovePodSandbox, pb.RemovePodSandboxRequest(pod_sandbox_id=pod))
    pods = call(
        "ListPodSandbox",
        rt.ListPodSandbox,
        pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(label_selector={label_key: label_value})),
    ).items
    check("ListPodSandbox", pods == [], f"removed pod still listed: {[x.id for x in pods]}")

    call("RemoveImage", im.RemoveImage, pb.RemoveImageRequest(image=pb.ImageSpec(image=a.image)))
    gone = call("ImageStatus(removed)", im.ImageStatus, pb.ImageStatusRequest(image=pb.ImageSpec(image=a.image)))
    check("ImageStatus(removed)", not gone.HasField("image"), f"image still present: {gone.image.id}")
    print(f"OK {a.authority}: {calls[0]} calls, every reply checked", flush=True)


if __name__ == "__main__":
    main()
