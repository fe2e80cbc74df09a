"""Exec, attach and port-forward through a CRI runtime's streaming server, with clients cricket
did not write: grpcio asks for the URLs, websocket-client (PyPI) speaks the WebSocket
protocols, and npm's spdy-transport (tests/clients/spdy_client.js, under Node) speaks SPDY/3.1.

Run by tests/streaming_clients.rs:

    python streaming_session.py --stubs DIR --socket /run/x.sock --image REF --log-dir DIR \
        --label cricket.run=ID --node NODE --spdy-client spdy_client.js [--idle SECONDS]

With --idle (the runtime's --stream-idle-timeout), a silent session in each protocol must be
closed by the server after that long, neither sooner nor much later.

Every answer is checked. Each step runs even when an earlier one failed, printing `ok [step]`
or `FAIL [step] ...`; any failure makes the exit status 1.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import time



class StepFailed(Exception):
    pass


def fail(step, what):
    raise StepFailed(f"FAIL [{step}] {what}")


def check(step, cond, what):
    if not cond:
        fail(step, what)


def exit_code(status_json, step):
    """The exit code a remotecommand v4 status stands for (0 for Success)."""
    try:
        st = json.loads(status_json)
    except ValueError:
        fail(step, f"status is not JSON: {status_json!r}")
    if st.get("status") == "Success":
        return 0
    check(step, st.get("reason") == "NonZeroExitCode", f"status {st}")
    causes = st.get("details", {}).get("causes", [])
    codes = [c.get("message") for c in causes if c.get("reason") == "ExitCode"]
    check(step, len(codes) == 1, f"no ExitCode cause in {st}")
    return int(codes[0])


def ws_session(websocket, url, protocol, sends, step):
    """Connects offering `protocol`, sends each (channel, bytes) message, then reads to the
    close. Returns ({channel: bytes}, protocol chosen)."""
    try:
        ws = websocket.create_connection(url.replace("http://", "ws://", 1), subprotocols=[protocol], timeout=20)
    except Exception as e:  # the library's handshake errors have no common base
        fail(step, f"WebSocket upgrade offering {protocol}: {e!r}")
    text = "base64" in protocol
    for ch, data in sends:
        if ch == 255:
            ws.send_binary(bytes([255]) + data)
        elif text:
            ws.send(str(ch) + base64.b64encode(data).decode())
        else:
            ws.send_binary(bytes([ch]) + data)
    got = {}
    while True:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        if not data:
            continue
        if opcode == websocket.ABNF.OPCODE_TEXT:
            check(step, text, f"a text message in a binary protocol: {data[:40]!r}")
            ch, payload = data[0] - ord("0"), base64.b64decode(data[1:])
        else:
            check(step, not text, f"a binary message in {protocol}")
            ch, payload = data[0], data[1:]
        got[ch] = got.get(ch, b"") + payload
    chosen = ws.subprotocol
    ws.close()
    return got, chosen


def spdy(a, mode, url, *args):
    out = subprocess.run([a.node, a.spdy_client, mode, url, *args], capture_output=True, text=True, timeout=60)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    try:
        res = json.loads(line)
    except ValueError:
        fail(f"spdy {mode}", f"no result from node: {out.stdout!r} {out.stderr!r}")
    if "failure" in res:
        fail(f"spdy {mode}", f"{res['failure']} {out.stderr}")
    if out.stderr:
        res["node stderr"] = out.stderr[-4000:]
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stubs", required=True)
    p.add_argument("--socket", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--log-dir", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--spdy-client", required=True)
    p.add_argument("--idle", type=float)
    a = p.parse_args()
    sys.path.insert(0, a.stubs)
    import grpc  # noqa: E402
    import websocket  # noqa: E402
    import api_pb2 as pb  # noqa: E402
    import api_pb2_grpc as rpc  # noqa: E402

    channel = grpc.insecure_channel("unix://" + a.socket)
    rt = rpc.RuntimeServiceStub(channel)
    im = rpc.ImageServiceStub(channel)
    label_key, label_value = a.label.split("=", 1)
    labels = {label_key: label_value, "cricket.case": "streaming_session"}

    def call(step, fn, req):
        try:
            return fn(req, timeout=30)
        except grpc.RpcError as e:
            fail(step, f"{e.code()}: {e.details()}")

    call("PullImage", im.PullImage, pb.PullImageRequest(image=pb.ImageSpec(image=a.image)))
    os.makedirs(a.log_dir, exist_ok=True)
    pod_cfg = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="stream-pod", uid="stream-uid-" + label_value, namespace="cricket"),
        hostname="stream-pod",
        log_directory=a.log_dir,
        labels=labels,
        linux=pb.LinuxPodSandboxConfig(),
    )
    pod = call("RunPodSandbox", rt.RunPodSandbox, pb.RunPodSandboxRequest(config=pod_cfg)).pod_sandbox_id

    def container(name, command, stdin=False, stdin_once=False):
        cfg = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=a.image),
            command=command,
            labels=labels,
            log_path=name + ".log",
            stdin=stdin,
            stdin_once=stdin_once,
            linux=pb.LinuxContainerConfig(),
        )
        req = pb.CreateContainerRequest(pod_sandbox_id=pod, config=cfg, sandbox_config=pod_cfg)
        cid = call(f"CreateContainer({name})", rt.CreateContainer, req).container_id
        call(f"StartContainer({name})", rt.StartContainer, pb.StartContainerRequest(container_id=cid))
        return cid

    shell = container("shell", ["/bin/probe", "sleep", "inf"])
    container("web", ["/bin/probe", "http", "8080", "through the pod"])
    reader = container("reader", ["/bin/probe", "cat"], stdin=True, stdin_once=True)
    deadline = time.time() + 20
    while not os.path.exists(os.path.join(a.log_dir, "web.log")) or "listening" not in open(os.path.join(a.log_dir, "web.log")).read():
        check("web listens", time.time() < deadline, "the pod's web server did not start")
        time.sleep(0.05)

    def exec_url(cmd, stdin=False):
        req = pb.ExecRequest(container_id=shell, cmd=cmd, stdin=stdin, stdout=True, stderr=True)
        return call("Exec", rt.Exec, req).url

    failed = []

    def step(name, fn):
        try:
            fn()
            print(f"ok [{name}]", flush=True)
        except StepFailed as e:
            failed.append(name)
            print(str(e), flush=True)

    # WebSocket, binary and base64 framing: three channels out, the status on 3.
    def ws_exec(protocol):
        name = f"ws exec {protocol}"
        got, chosen = ws_session(websocket, exec_url(["/bin/probe", "streams", "out", "err", "3"]), protocol, [], name)
        check(name, chosen == protocol, f"subprotocol {chosen!r}")
        check(name, got.get(1) == b"out\n" and got.get(2) == b"err\n", f"channels {got}")
        check(name, exit_code(got.get(3, b"").decode(), name) == 3, f"status {got.get(3)!r}")

    for protocol in ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"]:
        step(f"ws exec {protocol}", lambda: ws_exec(protocol))

    # WebSocket v5: [255, 0] ends stdin.
    def ws_v5():
        name = "ws exec v5 stdin close"
        sends = [(0, b"hello over v5\n"), (255, b"\x00")]
        got, _ = ws_session(websocket, exec_url(["/bin/probe", "stdin"], stdin=True), "v5.channel.k8s.io", sends, name)
        check(name, got.get(1) == b"hello over v5\n", f"channels {got}")
        check(name, exit_code(got.get(3, b"").decode(), name) == 0, f"status {got.get(3)!r}")

    step("ws exec v5 stdin close", ws_v5)

    # WebSocket port-forward: channel 0 data, 1 errors, each opened by the port (LE).
    def ws_port_forward():
        name = "ws port-forward"
        pf = call("PortForward", rt.PortForward, pb.PortForwardRequest(pod_sandbox_id=pod, port=[8080])).url
        got, _ = ws_session(websocket, pf, "v4.channel.k8s.io", [(0, b"GET / HTTP/1.0\r\n\r\n")], name)
        data, err = got.get(0, b""), got.get(1, b"")
        port = (8080).to_bytes(2, "little")
        check(name, data[:2] == port and err[:2] == port, f"prefixes {data[:2]!r} {err[:2]!r}")
        check(name, data[2:].startswith(b"HTTP/1.") and data.endswith(b"through the pod"), f"answer {data!r}")
        check(name, err[2:] == b"", f"error channel {err!r}")

    step("ws port-forward", ws_port_forward)

    # SPDY via spdy-transport: stdin with its FIN, exit codes, a port-forward pair.
    def spdy_stdin():
        name = "spdy exec stdin"
        res = spdy(a, "exec", exec_url(["/bin/probe", "stdin"], stdin=True), "hello from node\n")
        check(name, res["protocol"] == "v4.channel.k8s.io", f"{res}")
        check(name, res["stdout"] == "hello from node\n" and exit_code(res["status"], name) == 0, f"{res}")

    def spdy_exit():
        name = "spdy exec exit"
        res = spdy(a, "exec", exec_url(["/bin/probe", "streams", "a", "b", "7"]), "")
        check(name, (res["stdout"], res["stderr"]) == ("a\n", "b\n"), f"{res}")
        check(name, exit_code(res["status"], name) == 7, f"{res}")

    def spdy_port_forward():
        name = "spdy port-forward"
        pf = call("PortForward", rt.PortForward, pb.PortForwardRequest(pod_sandbox_id=pod, port=[8080])).url
        res = spdy(a, "portforward", pf, "8080", "GET / HTTP/1.0\r\n\r\n")
        check(name, res["data"].startswith("HTTP/1.") and res["data"].endswith("through the pod"), f"{res}")
        check(name, res["error"] == "", f"{res}")

    # SPDY attach to a stdin_once container: its stdin ends with ours, so cat exits.
    def spdy_attach():
        name = "spdy attach"
        url = call("Attach", rt.Attach, pb.AttachRequest(container_id=reader, stdin=True, stdout=True, stderr=True)).url
        res = spdy(a, "exec", url, "attached from node\n")
        check(name, res["stdout"] == "attached from node\n", f"{res}")
        check(name, exit_code(res["status"], name) == 0, f"{res}")

    step("spdy exec stdin", spdy_stdin)
    step("spdy exec exit", spdy_exit)
    step("spdy port-forward", spdy_port_forward)
    step("spdy attach", spdy_attach)

    # A command that prints nothing and reads nothing: only the idle timeout ends its session.
    def idle_ended(name, started):
        took = time.time() - started
        check(name, a.idle - 0.5 <= took <= a.idle + 10, f"a silent session ended after {took:.1f} s; the idle timeout is {a.idle} s")

    def ws_idle():
        name = "ws exec idle"
        started = time.time()
        got, _ = ws_session(websocket, exec_url(["/bin/probe", "sleep", "600"]), "v4.channel.k8s.io", [], name)
        idle_ended(name, started)
        check(name, not got.get(3), f"an idle-closed session reported a status: {got}")

    def spdy_idle():
        name = "spdy exec idle"
        started = time.time()
        res = spdy(a, "exec", exec_url(["/bin/probe", "sleep", "600"]), "")
        idle_ended(name, started)
        check(name, res["status"] == "", f"an idle-closed session reported a status: {res}")

    if a.idle:
        step("ws exec idle", ws_idle)
        step("spdy exec idle", spdy_idle)

    call("StopPodSandbox", rt.StopPodSandbox, pb.StopPodSandboxRequest(pod_sandbox_id=pod))
    call("RemovePodSandbox", rt.RemovePodSandbox, pb.RemovePodSandboxRequest(pod_sandbox_id=pod))
    if failed:
        sys.exit(1)
    print("OK streaming: websocket-client and spdy-transport sessions checked", flush=True)


if __name__ == "__main__":
    try:
        main()
    except StepFailed as e:
        print(str(e), flush=True)
        sys.exit(1)
