"""docker-py (Debian's python3-docker) on the Engine API's long tail, each
answer as Debian's dockerd 20.10 gives it. DOCKER_HOST points at the test's
berthd; argv[1] is a busybox rootfs tarball, argv[4] a volume plugin's
directory, argv[5] a registry's host:port. Prints "longtail: all done"."""

import gzip
import io
import json
import os
import socket
import sys
import tarfile
import tempfile
import time

import docker
from docker.types import LogConfig

client = docker.from_env(timeout=60)
api = client.api

with open(sys.argv[1], "rb") as f:
    api.import_image_from_data(f.read(), repository="busybox", tag="latest",
                               changes=['CMD ["sh"]'])


def api_error(status, fragment, call, *args, **kwargs):
    """`call` fails with an APIError of `status` whose text has `fragment`."""
    try:
        call(*args, **kwargs)
    except docker.errors.APIError as e:
        assert e.status_code == status, (call, e.status_code, e.explanation)
        assert fragment in str(e.explanation), (call, e.explanation)
        return
    raise AssertionError(f"{call.__name__} did not fail")


# Swarm: a node that is not part of one, never 404; plugins: none.
# docker-py takes the 503 of a forced leave as "nothing to leave".
assert client.swarm.leave(force=True) is True
api_error(503, "This node is not part of a swarm", client.swarm.leave)
api_error(503, "This node is not a swarm manager", api.inspect_swarm)
for call in (api.nodes, api.services, api.tasks, api.secrets, api.configs):
    api_error(503, "This node is not a swarm manager", call)
assert client.info()["Swarm"]["LocalNodeState"] == "inactive", client.info()["Swarm"]
# An overlay network is a swarm's; host and null are made once.
api_error(500, "This node is not a swarm manager", api.create_network, "lt-ov", driver="overlay")
api_error(403, 'only one instance of "host" network is allowed', api.create_network, "lt-h", driver="host")
api_error(403, 'only one instance of "null" network is allowed', api.create_network, "lt-n", driver="null")
assert api.plugins() == []
api_error(404, 'plugin "nosuch" not found', api.inspect_plugin, "nosuch")
print("swarm and plugins: ok", flush=True)

# WorkingDir: created when missing; relative refused at create.
out = client.containers.run("busybox", ["sh", "-c", "pwd; stat -c %u:%a ."],
                            working_dir="/does/not/exist", remove=True)
assert out == b"/does/not/exist\n0:755\n", out
api_error(400, "the working directory 'rel/dir' is invalid, it needs to be an absolute path",
          api.create_container, "busybox", "true", working_dir="rel/dir")
print("working dir: ok", flush=True)

# Runtime: reported; "runc" names the default runtime.
c = client.containers.create("busybox", "true", runtime="runc")
assert c.attrs["HostConfig"]["Runtime"] == "runc", c.attrs["HostConfig"]["Runtime"]
c.start()
assert c.wait()["StatusCode"] == 0
c.remove()
c = client.containers.create("busybox", "true")
assert c.attrs["HostConfig"]["Runtime"] != "", c.attrs["HostConfig"]
c.remove()
print("runtime: ok", flush=True)

# LogConfig none: runs, keeps nothing, logs says why; unknown drivers fail.
c = client.containers.run("busybox", ["echo", "unseen"], detach=True,
                          log_config=LogConfig(type="none"))
assert c.wait()["StatusCode"] == 0
c.reload()
assert c.attrs["HostConfig"]["LogConfig"]["Type"] == "none"
api_error(501, "configured logging driver does not support reading", c.logs)
c.remove()
api_error(400, 'error looking up logging plugin nosuchdriver: plugin "nosuchdriver" not found',
          client.containers.create, "busybox", "true",
          log_config=LogConfig(type="nosuchdriver"))
print("log driver none: ok", flush=True)

# diff: added (1) vs changed (0) vs deleted (2); the runtime's own mount
# points are not the container's changes, nor are they committed.
c = client.containers.run(
    "busybox", ["sh", "-c", "echo x > /etc/added; echo y >> /etc/passwd; rm /etc/group"],
    detach=True)
assert c.wait()["StatusCode"] == 0
diff = {d["Path"]: d["Kind"] for d in c.diff()}
assert diff.get("/etc/added") == 1, diff
assert diff.get("/etc/passwd") == 0, diff
assert diff.get("/etc/group") == 2, diff
assert diff.get("/etc") == 0, diff
for hidden in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev", "/proc", "/sys"):
    assert hidden not in diff, (hidden, diff)
img = c.commit(repository="longtail-commit")
out = client.containers.run(img.id, ["sh", "-c", "cat /etc/added; cat /etc/hostname"],
                            remove=True, hostname="fresh")
assert out == b"x\nfresh\n", out
c.remove()
print("diff and commit: ok", flush=True)

# kill and stop answer once the container has exited.
for verb in ("kill", "stop"):
    c = client.containers.run("busybox", ["sleep", "1000"], detach=True)
    if verb == "kill":
        c.kill()
    else:
        c.stop(timeout=1)
    c.reload()
    assert c.status == "exited", (verb, c.status)
    c.remove()
print("kill and stop: ok", flush=True)

# stats: networks per interface.
c = client.containers.run("busybox", ["sleep", "1000"], detach=True)
st = c.stats(stream=False)
assert "eth0" in st["networks"], st.get("networks")
assert "lo" not in st["networks"], st["networks"]
for k in ("rx_bytes", "rx_packets", "tx_bytes", "tx_packets", "rx_errors", "tx_dropped"):
    assert k in st["networks"]["eth0"], st["networks"]["eth0"]

# exec: a terminal's line endings; a detached start answers and closes.
r = c.exec_run(["echo", "hi"], tty=True)
assert r.output == b"hi\r\n", r.output
r = c.exec_run(["echo", "hi"])
assert r.output == b"hi\n", r.output
ex = api.exec_create(c.id, ["sh", "-c", "echo done > /tmp/detached"])
assert api.exec_start(ex["Id"], detach=True) == ""
deadline = time.time() + 10
while api.exec_inspect(ex["Id"])["Running"] and time.time() < deadline:
    time.sleep(0.05)
assert c.exec_run(["cat", "/tmp/detached"]).output == b"done\n"
c.kill()
c.remove()
print("stats and exec: ok", flush=True)

# Attach without streaming returns the logs so far, every time.
c = client.containers.run("busybox", ["sh", "-c", "echo hello; echo world >&2"], detach=True)
assert c.wait()["StatusCode"] == 0
for i in range(20):
    out = c.attach(logs=True, stream=False)
    assert out == b"hello\nworld\n", (i, out)
out = api.attach(c.id, logs=True, stream=False, stdout=True, stderr=False)
assert out == b"hello\n", out
c.remove()
print("attach logs: ok", flush=True)

# Healthcheck fields may be null or absent.
hc = api.create_host_config()
res = api._post_json(api._url("/containers/create"), data={
    "Image": "busybox", "Cmd": ["sleep", "1000"], "HostConfig": hc,
    "Healthcheck": {"Test": ["CMD", "true"], "Interval": None, "Timeout": None,
                    "Retries": None, "StartPeriod": None}})
cid = api._result(res, True)["Id"]
api.start(cid)
deadline = time.time() + 60
while api.inspect_container(cid)["State"]["Health"]["Status"] != "healthy":
    assert time.time() < deadline, api.inspect_container(cid)["State"]["Health"]
    time.sleep(0.5)
api.remove_container(cid, force=True)
print("healthcheck nulls: ok", flush=True)

# detachKeys from the client's config file reach the daemon on attach.
cfg = tempfile.mkdtemp()
with open(os.path.join(cfg, "config.json"), "w") as f:
    json.dump({"detachKeys": "ctrl-x,x"}, f)
keyed = docker.APIClient(base_url=os.environ["DOCKER_HOST"], timeout=60)
keyed._general_configs = docker.utils.config.load_general_config(
    os.path.join(cfg, "config.json"))
assert keyed._general_configs.get("detachKeys") == "ctrl-x,x", keyed._general_configs
c = client.containers.run("busybox", ["sh"], detach=True, tty=True, stdin_open=True)
sock = keyed.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})
raw = sock._sock
raw.settimeout(10)
raw.sendall(b"\x18x")
ended = False
deadline = time.time() + 10
while time.time() < deadline:
    try:
        if raw.recv(4096) == b"":
            ended = True
            break
    except socket.timeout:
        break
assert ended, "the detach keys from config.json did not end the attach"
c.reload()
assert c.status == "running", c.status
c.remove(force=True)
print("detach keys: ok", flush=True)

# Legacy links on the default bridge: variables, /etc/hosts, rm --link.
web = client.containers.run("busybox", ["sleep", "1000"], detach=True, name="pyweb",
                            environment={"FOO": "bar"}, ports={"80/tcp": None})
web_ip = api.inspect_container(web.id)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
out = client.containers.run("busybox", ["sh", "-c", "echo $DB_NAME $DB_PORT_80_TCP_ADDR $DB_ENV_FOO"],
                            links={"pyweb": "db"}, name="pyclient", remove=True)
assert out == f"/pyclient/db {web_ip} bar\n".encode(), out
c = client.containers.create("busybox", "true", links={"pyweb": "db"}, name="pyclient2")
assert c.attrs["HostConfig"]["Links"] == ["/pyweb:/pyclient2/db"], c.attrs["HostConfig"]["Links"]
api.remove_container("/pyclient2/db", link=True)
c.reload()
assert c.attrs["HostConfig"]["Links"] is None, c.attrs["HostConfig"]["Links"]
api_error(500, "cannot remove the default link name", api.remove_container, "pyclient2", link=True)
c.remove()
web.remove(force=True)
print("links: ok", flush=True)

# Images: save by name, a broken load, commit with changes, rmi by id,
# prune's reclaimed space.
chunks = b"".join(client.images.get("busybox").save(named=True))
with tarfile.open(fileobj=io.BytesIO(chunks)) as t:
    assert "manifest.json" in t.getnames(), t.getnames()[:5]
try:
    client.images.load(b"\x00garbage" * 300)
    raise AssertionError("a broken archive loaded")
except docker.errors.ImageLoadError as e:
    assert "tar" in str(e), e
c = client.containers.run("busybox", ["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=3"],
                          detach=True)
assert c.wait()["StatusCode"] == 0
base = client.images.get("busybox").id
img = c.commit(changes=["ENV X=1", "EXPOSE 81", "USER 12:12", 'LABEL a="b c"', "WORKDIR /srv"])
cfg = img.attrs["Config"]
assert cfg["Env"] == ["X=1"], cfg["Env"]
assert cfg["ExposedPorts"] == {"81/tcp": {}}, cfg["ExposedPorts"]
assert cfg["User"] == "12:12" and cfg["WorkingDir"] == "/srv", cfg
assert cfg["Labels"] == {"a": "b c"}, cfg["Labels"]
assert img.attrs["Parent"] == base, (img.attrs["Parent"], base)
api.remove_image(img.id)
assert img.id not in [i.id for i in client.images.list(all=True)], "rmi by id left it"
c.reload()
sizes = api.containers(all=True, size=True, filters={"id": c.id})
assert sizes[0]["SizeRw"] >= 3 << 20, sizes
r = client.containers.prune()
assert c.id in r["ContainersDeleted"] and r["SpaceReclaimed"] >= 3 << 20, r
out = client.containers.run("busybox", ["sh", "-c", "dd if=/dev/zero of=/half bs=1k count=512"],
                            detach=True)
out.wait()
dangling = out.commit()
out.remove()
r = client.images.prune()
assert any(d.get("Deleted") == dangling.id for d in r["ImagesDeleted"] or []), r
# The space of the layer that went, not of the busybox layer under it that
# busybox keeps: dockerd sums the removed layers.
assert 512 << 10 <= r["SpaceReclaimed"] < 1 << 20, r
print("images: ok", flush=True)

# Files in volumes and binds are the volume's, not the rootfs under it.
bind = tempfile.mkdtemp()
with open(os.path.join(bind, "f"), "w") as f:
    f.write("from the host\n")
c = client.containers.run("busybox", ["sleep", "1000"], detach=True,
                          volumes={"pyvol": {"bind": "/data", "mode": "rw"},
                                   bind: {"bind": "/bind", "mode": "ro"}})
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    info = tarfile.TarInfo("put.txt")
    info.size = 4
    t.addfile(info, io.BytesIO(b"put\n"))
assert c.put_archive("/data", buf.getvalue())
assert c.exec_run(["cat", "/data/put.txt"]).output == b"put\n"
assert client.containers.run("busybox", ["cat", "/data/put.txt"], remove=True,
                             volumes={"pyvol": {"bind": "/data"}}) == b"put\n"
bits, st = c.get_archive("/bind/f")
with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as t:
    assert t.extractfile("f").read() == b"from the host\n"
assert st["name"] == "f", st
bits, st = c.get_archive("/data")
with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as t:
    assert "data/put.txt" in t.getnames(), t.getnames()
api_error(500, "mounted volume is marked read-only", c.put_archive, "/bind", buf.getvalue())
c.remove(force=True)
client.volumes.get("pyvol").remove()
print("archives in volumes: ok", flush=True)

# Networks: what a non-swarm dockerd accepts and refuses; endpoint
# settings at create and at connect.
subnet, bridge = sys.argv[2], sys.argv[3]
net = client.networks.create("pynet", attachable=True, options={
    "com.docker.network.bridge.name": bridge},
    ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)]))
net.reload()
assert net.attrs["Attachable"] is True and net.attrs["Ingress"] is False, net.attrs
assert net.attrs["Scope"] == "local" and net.attrs["Options"] is not None, net.attrs
api_error(403, "Ingress network can only be global scope network",
          api.create_network, "pying", ingress=True)
api_error(403, "cannot create a swarm scoped network when swarm is not active",
          api.create_network, "pyswarm", scope="swarm")
fixed = subnet.rsplit(".", 1)[0] + ".77"
ctr = api.create_container(
    "busybox", ["sleep", "1000"], host_config=api.create_host_config(network_mode="pynet"),
    networking_config=api.create_networking_config({"pynet": api.create_endpoint_config(
        aliases=["pyalias"], ipv4_address=fixed)}))
api.start(ctr["Id"])
ep = api.inspect_container(ctr["Id"])["NetworkSettings"]["Networks"]["pynet"]
assert ep["IPAddress"] == fixed and "pyalias" in ep["Aliases"], ep
api.disconnect_container_from_network(ctr["Id"], "pynet")
api.connect_container_to_network(ctr["Id"], "pynet", link_local_ips=["169.254.10.10"],
                                 driver_opt={"a": "b"})
ep = api.inspect_container(ctr["Id"])["NetworkSettings"]["Networks"]["pynet"]
assert ep["DriverOpts"] == {"a": "b"}, ep
assert ep["IPAMConfig"]["LinkLocalIPs"] == ["169.254.10.10"], ep
out = client.containers.get(ctr["Id"]).exec_run(["ip", "addr"]).output
assert b"inet 169.254.10.10/16" in out, out
api.remove_container(ctr["Id"], force=True)
net.remove()
print("networks: ok", flush=True)

# What docker-py's own suite found (each checked against dockerd 20.10).
c = api.create_container("busybox", ["true"], runtime="runc")
assert api.inspect_container(c)["HostConfig"]["Runtime"] == "runc"
api.remove_container(c)
c = client.containers.run("busybox", ["true"], detach=True)
c.wait()
img = c.commit()
assert img.attrs["Container"] == c.id, img.attrs["Container"]
saved = b"".join(api.get_image(img.id))
assert len(saved) > 1024
c.remove()
api.remove_image(img.id)
# An anonymous volume: written before the first start, kept across starts.
c = client.containers.create("busybox", ["sh", "-c", "cat /vol1/f; echo again > /vol1/g"],
                             volumes=["/vol1"])
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    info = tarfile.TarInfo("f")
    info.size = 6
    t.addfile(info, io.BytesIO(b"early\n"))
assert c.put_archive("/vol1", buf.getvalue())
c.start()
c.wait()
c.start()
c.wait()
assert c.logs() == b"early\nearly\n", c.logs()
c.remove(v=True)
out = client.containers.run("busybox", ["sh", "-c", "cat /sys/fs/cgroup/devices/devices.list 2>/dev/null || echo c 7:128 rwm"],
                            device_cgroup_rules=["c 7:128 rwm"], remove=True)
assert b"c 7:128 rwm" in out, out
# dockerd refuses a bad rule at start, berth already at create.
try:
    client.containers.run("busybox", ["true"], device_cgroup_rules=["x 1:2 rwm"], name="badrule")
    raise AssertionError("a bad device cgroup rule ran")
except docker.errors.APIError as e:
    assert "invalid device cgroup" in str(e), e
try:
    client.containers.get("badrule").remove(force=True)
except docker.errors.NotFound:
    pass
# Exec: a command that cannot start ends with 126; a detach closes the
# stream at once; detachKeys as docker-py spells it.
c = client.containers.run("busybox", ["cat"], detach=True, stdin_open=True)
assert c.exec_run(["nosuchcmd"]).exit_code == 126
for keys, seq in ((None, [b"\x10", b"\x11"]), ("ctrl-x", [b"\x18"])):
    ex = api.exec_create(c.id, "cat", stdin=True, tty=True, stdout=True, detach_keys=keys)
    raw = api.exec_start(ex, tty=True, socket=True)._sock
    raw.settimeout(10)
    for k in seq:
        raw.sendall(k)
        time.sleep(0.3)
    got = b""
    try:
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    assert got == b"" or b"read escape sequence" in got, (keys, got)
    raw.close()
c.remove(force=True)
# Volumes: a client of API 1.41 prunes named volumes too.
client.volumes.create("pyold")
old = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="1.41")
assert "pyold" in (old.prune_volumes()["VolumesDeleted"] or [])
# Networks: an IPv6 pool kept without EnableIPv6, host bits taken, duplicate
# names on request, IPAM options as sent (none: null), auxiliary addresses.
n = api.create_network("pyv6", ipam=docker.types.IPAMConfig(pool_configs=[
    docker.types.IPAMPool(subnet="fd42:389::1/64")]))
info = api.inspect_network(n["Id"])
assert info["EnableIPv6"] is False, info
assert info["IPAM"]["Options"] is None, info["IPAM"]
api.remove_network(n["Id"])
n = api.create_network("pyaux", ipam=docker.types.IPAMConfig(pool_configs=[
    docker.types.IPAMPool(subnet=subnet, aux_addresses={"a": subnet.rsplit(".", 1)[0] + ".5"})]),
    options={"com.docker.network.bridge.name": bridge})
assert api.inspect_network(n["Id"])["IPAM"]["Config"][0]["AuxiliaryAddresses"] == {
    "a": subnet.rsplit(".", 1)[0] + ".5"}
api_error(409, "already exists", api.create_network, "pyaux", check_duplicate=True)
api.remove_network(n["Id"])
# A link-local IPv6 subnet, as dockerd takes it (compose's suite uses
# fe80::/64 with a fixed address).
n = api.create_network("pyll6", enable_ipv6=True, ipam=docker.types.IPAMConfig(pool_configs=[
    docker.types.IPAMPool(subnet=subnet), docker.types.IPAMPool(subnet="fe80::/64")]),
    options={"com.docker.network.bridge.name": bridge})
c = api.create_container("busybox", ["sleep", "1000"], host_config=api.create_host_config(
    network_mode="pyll6"), networking_config=api.create_networking_config({
        "pyll6": api.create_endpoint_config(ipv6_address="fe80::1001:100")}))
api.start(c)
ep = api.inspect_container(c)["NetworkSettings"]["Networks"]["pyll6"]
assert ep["GlobalIPv6Address"] == "fe80::1001:100", ep
out = client.containers.get(c["Id"]).exec_run(["ip", "-6", "addr", "show", "eth0"]).output
assert b"fe80::1001:100/64" in out, out
api.remove_container(c, force=True)
api.remove_network(n["Id"])
# A link on a user network is a name DNS answers, also for a container
# that starts after the one linking to it.
n = api.create_network("pylinks", ipam=docker.types.IPAMConfig(pool_configs=[
    docker.types.IPAMPool(subnet=subnet)]), options={"com.docker.network.bridge.name": bridge})
linking = api.create_container("busybox", ["sleep", "1000"],
    host_config=api.create_host_config(network_mode="pylinks"),
    networking_config=api.create_networking_config({"pylinks": api.create_endpoint_config(
        links=[("pyupstream", "bar")])}))
api.start(linking)
up = api.create_container("busybox", ["sleep", "1000"], name="pyupstream",
                          host_config=api.create_host_config(network_mode="pylinks"))
api.start(up)
up_ip = api.inspect_container(up)["NetworkSettings"]["Networks"]["pylinks"]["IPAddress"]
ex = api.exec_create(linking, ["nslookup", "bar"])
out = api.exec_start(ex)
assert up_ip.encode() in out and api.exec_inspect(ex)["ExitCode"] == 0, out
# The alias is the linking container's own: another on the network does
# not resolve it (Docker's embedded DNS answers it to the linker only).
other = api.create_container("busybox", ["sleep", "1000"],
                             host_config=api.create_host_config(network_mode="pylinks"))
api.start(other)
ex = api.exec_create(other, ["nslookup", "bar"])
out = api.exec_start(ex)
assert up_ip.encode() not in out and api.exec_inspect(ex)["ExitCode"] != 0, out
ex = api.exec_create(other, ["nslookup", "pyupstream"])
out = api.exec_start(ex)
assert up_ip.encode() in out, out
for c in (linking, up, other):
    api.remove_container(c, force=True)
api.remove_network(n["Id"])
print("docker-py's suite findings: ok", flush=True)

# Shapes dockerd answers with (read side by side with dockerd 20.10):
# unset Entrypoint is null, a healthcheck shows only what it sets, update
# without warnings says null, commit's message is the image's Comment,
# info has the fields the CLI and clients read.
c = api.create_container("busybox", ["sh", "-c", "echo hi > /f"],
                         healthcheck={"test": ["CMD", "true"], "interval": 1000000000})
cfg = api.inspect_container(c)["Config"]
assert cfg["Entrypoint"] is None, cfg["Entrypoint"]
assert cfg["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 1000000000}, cfg["Healthcheck"]
assert api.update_container(c, cpu_shares=512) == {"Warnings": None}
api.start(c)
api.wait(c)
api.commit(c, repository="pycommit", tag="msg", message="the message", author="me")
i = api.inspect_image("pycommit:msg")
assert (i["Comment"], i["Author"]) == ("the message", "me"), (i["Comment"], i["Author"])
assert api.history("pycommit:msg")[0]["Comment"] == "the message"
api.commit(c, repository="pycommit", tag="plain")
assert api.inspect_image("pycommit:plain")["Comment"] == ""
api.remove_container(c, force=True)
api.remove_image("pycommit:msg")
api.remove_image("pycommit:plain")
info = api.info()
for k in ("OomKillDisable", "KernelMemoryTCP", "BridgeNfIptables", "BridgeNfIp6tables",
          "HttpProxy", "HttpsProxy", "NoProxy", "GenericResources"):
    assert k in info, k
assert info["Warnings"] != [], "no warnings read as null, as dockerd's"
c = api.create_container("busybox", ["sleep", "1000"], name="pyshapes1")
assert [x["Names"] for x in api.containers(all=True, filters={"name": "^/pyshapes1$"})] == [["/pyshapes1"]]
assert api.containers(all=True, filters={"name": "^pyshapes1"}) == []
listed = api.containers(all=True, filters={"name": "pyshapes1"})[0]
assert listed["HostConfig"]["NetworkMode"] == "default", listed["HostConfig"]
hc = api.inspect_container(c)["HostConfig"]
assert hc["NetworkMode"] == "default", hc["NetworkMode"]
assert (hc["PidsLimit"], hc["OomKillDisable"], hc["MemorySwappiness"], hc["CpuCount"]) == (None, False, None, 0), hc
api.start(c)
api.resize(c, 10, 20)  # no terminal: nothing to resize, as dockerd
api.remove_container(c, force=True)
c = api.create_container("busybox", ["/no/such/binary"])
try:
    api.start(c)
    raise AssertionError("started")
except docker.errors.APIError as e:
    assert e.response.status_code == 400, e
assert api.inspect_container(c)["State"]["ExitCode"] == 127
api.remove_container(c, force=True)
# A pull that fails before it has anything to show is the answer's status
# (docker-py's pull() raises), not an error line in a 200 stream.
try:
    api.pull("127.0.0.1:1/nothing", tag="x")
    raise AssertionError("pulled")
except docker.errors.APIError as e:
    assert e.response.status_code == 500 and "127.0.0.1:1" in str(e), e
# On a network of the user's, a container that joined it has its short id
# among its aliases (dockerd's, for API < 1.45); the default bridge has none.
n = api.create_network("pyaliases")
c = api.create_container("busybox", ["sleep", "1000"],
                         host_config=api.create_host_config(network_mode="pyaliases"))
assert api.inspect_container(c)["NetworkSettings"]["Networks"]["pyaliases"]["Aliases"] is None
api.start(c)
short = c["Id"][:12]
assert api.inspect_container(c)["NetworkSettings"]["Networks"]["pyaliases"]["Aliases"] == [short]
api.stop(c, timeout=0)
assert api.inspect_container(c)["NetworkSettings"]["Networks"]["pyaliases"]["Aliases"] == [short]
api.remove_container(c, force=True)
c = api.create_container("busybox", ["sleep", "1000"])
api.start(c)
api.connect_container_to_network(c, "pyaliases", aliases=["q"])
nets = api.inspect_container(c)["NetworkSettings"]["Networks"]
assert nets["pyaliases"]["Aliases"] == ["q", c["Id"][:12]], nets["pyaliases"]
assert nets["bridge"]["Aliases"] is None, nets["bridge"]
api.remove_container(c, force=True)
api.remove_network(n["Id"])
# The reference filter lists an image with the names that matched only.
api.tag("busybox", "pyref/x", "one")
listed = api.images(filters={"reference": "pyref/*"})
assert [i["RepoTags"] for i in listed] == [["pyref/x:one"]], listed
assert all("pyref/x:one" not in (i["RepoTags"] or []) for i in api.images(filters={"reference": "busybox"}))
api.remove_image("pyref/x:one")
# A --mount's volume labels go to the volume it makes.
c = api.create_container("busybox", ["true"], host_config=api.create_host_config(
    mounts=[docker.types.Mount("/v", "pylabeled", type="volume", labels={"a": "b"})]))
assert api.inspect_volume("pylabeled")["Labels"] == {"a": "b"}
api.remove_container(c, force=True)
api.remove_volume("pylabeled")
# No pids limit: stats leave "limit" out, as dockerd.
c = api.create_container("busybox", ["sleep", "1000"])
api.start(c)
pids = api.stats(c, stream=False)["pids_stats"]
assert "limit" not in pids and pids["current"] >= 1, pids
api.remove_container(c, force=True)
# An endpoint's MAC address given at connect: shown before the start (as
# dockerd's), and the interface's address once it runs (dockerd >= 25).
n = api.create_network("pymac")
c = api.create_container("busybox", ["sleep", "1000"])


def connect_with_mac(net, mac):
    """docker-py >= 6's connect_container_to_network(mac_address=…)."""
    r = api._post_json(api._url("/networks/{0}/connect", net),
                       data={"Container": c["Id"], "EndpointConfig": {"MacAddress": mac}})
    api._raise_for_status(r)


api_error(400, "invalid MAC address", connect_with_mac, "pymac", "nonsense")
connect_with_mac("pymac", "02:42:ac:11:00:99")
assert api.inspect_container(c)["NetworkSettings"]["Networks"]["pymac"]["MacAddress"] == "02:42:ac:11:00:99"
api.start(c)
assert api.inspect_container(c)["NetworkSettings"]["Networks"]["pymac"]["MacAddress"] == "02:42:ac:11:00:99"
out = client.containers.get(c["Id"]).exec_run(["cat", "/sys/class/net/eth1/address"]).output
assert out.strip() == b"02:42:ac:11:00:99", out
api.remove_container(c, force=True)
api.remove_network(n["Id"])
# A committed image keeps the container's config (the image it ran, its
# command) as ContainerConfig; an imported one shows the empty config.
c = api.create_container("busybox", ["touch", "/t"])
api.start(c)
api.wait(c)
img = api.inspect_image(api.commit(c)["Id"])
assert img["ContainerConfig"]["Image"] == "busybox", img["ContainerConfig"]
assert img["ContainerConfig"]["Cmd"] == ["touch", "/t"], img["ContainerConfig"]
assert img["Container"] == c["Id"] and img["Parent"] == api.inspect_image("busybox")["Id"], img
assert api.inspect_image("busybox")["ContainerConfig"]["Image"] == ""
api.remove_container(c, force=True)
api.remove_image(img["Id"])
# Entrypoint as dockerd merges it: "" (the CLI's --entrypoint "") clears the
# image's and reads null; [] clears it and reads []; both run the command.
c = api.create_container("busybox", ["true"])
api.commit(c, repository="pyentry", tag="x", changes=['ENTRYPOINT ["echo", "ep"]'])
api.remove_container(c)
for given, read in (([""], None), ("", None), ([], []), (None, ["echo", "ep"])):
    r = api._post_json(api._url("/containers/create"),
                       data={"Image": "pyentry:x", "Cmd": ["echo", "cmd"], "Entrypoint": given})
    c = api._result(r, json=True)["Id"]
    i = api.inspect_container(c)
    assert i["Config"]["Entrypoint"] == read, (given, i["Config"]["Entrypoint"])
    api.start(c)
    api.wait(c)
    want = b"ep echo cmd\n" if given is None else b"cmd\n"
    assert api.logs(c) == want, (given, api.logs(c))
    api.remove_container(c)
api.remove_image("pyentry:x")
# HostConfig as dockerd keeps it: the default IPC mode named ("shareable"
# for clients older than API 1.40), DNS lists null unless sent, --tmpfs
# mounts left out of Mounts, a --mount's options echoed without zeros, no
# networks of its own for a container on another's.
c = api.create_container("busybox", ["sleep", "1000"], host_config=api.create_host_config(
    tmpfs={"/t": "size=1m"},
    mounts=[docker.types.Mount("/m", None, type="tmpfs", tmpfs_size=5368709)]))
hc = api.inspect_container(c)["HostConfig"]
assert hc["IpcMode"] == "private", hc["IpcMode"]
assert (hc["Dns"], hc["DnsOptions"], hc["DnsSearch"]) == (None, None, None), hc
assert hc["Mounts"] == [{"Type": "tmpfs", "Target": "/m", "TmpfsOptions": {"SizeBytes": 5368709}}], hc["Mounts"]
assert [m["Destination"] for m in api.inspect_container(c)["Mounts"]] == ["/m"]
api.start(c)
joined = api.create_container("busybox", ["true"], host_config=api.create_host_config(
    network_mode="container:" + c["Id"], dns=[]))
assert api.inspect_container(joined)["NetworkSettings"]["Networks"] == {}
assert api.inspect_container(joined)["HostConfig"]["Dns"] == []
api.remove_container(joined)
api.remove_container(c, force=True)
old_client = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="1.39")
c = old_client.create_container("busybox", ["true"], host_config=old_client.create_host_config())
assert api.inspect_container(c)["HostConfig"]["IpcMode"] == "shareable"
api.remove_container(c)
# What dockerd refuses at create on this host: an isolation other than
# "default", a storage size (no xfs project quotas), more real-time runtime
# than period. Real-time runtime is given to the cgroup: its start succeeds
# or fails on the kernel's word, as dockerd's.
api_error(400, "linux only supports 'default'", api.create_container, "busybox", ["true"],
          host_config=api.create_host_config(isolation="foobar"))
api_error(400, "--storage-opt is supported only for overlay over xfs",
          api.create_container, "busybox", ["true"],
          host_config=api.create_host_config(storage_opt={"size": "120G"}))
api_error(400, "cpu real-time runtime cannot be higher than cpu real-time period",
          api.create_container, "busybox", ["true"],
          host_config=api.create_host_config(cpu_rt_runtime=5000, cpu_rt_period=1000))
if os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
    c = api.create_container("busybox", ["sleep", "1000"], host_config=api.create_host_config(
        cpu_rt_runtime=500, cpu_rt_period=1000, isolation="default"))
    hc = api.inspect_container(c)["HostConfig"]
    assert (hc["CpuRealtimeRuntime"], hc["CpuRealtimePeriod"]) == (500, 1000), hc
    try:
        api.start(c)
        rt = client.containers.get(c["Id"]).exec_run(["cat", "/sys/fs/cgroup/cpu/cpu.rt_runtime_us"])
        assert rt.output.strip() == b"500", rt
    except docker.errors.APIError as e:
        assert "rt_runtime" in str(e), e
    api.remove_container(c, force=True)
    # update records them for the next start and leaves the running cgroup
    # alone, as dockerd's.
    c = api.create_container("busybox", ["sleep", "1000"])
    api.start(c)
    r = api._post_json(api._url("/containers/{0}/update", c["Id"]),
                       data={"CpuRealtimePeriod": 1000000, "CpuRealtimeRuntime": 10000})
    assert r.status_code == 200, r.text
    hc = api.inspect_container(c)["HostConfig"]
    assert (hc["CpuRealtimeRuntime"], hc["CpuRealtimePeriod"]) == (10000, 1000000), hc
    api.remove_container(c, force=True)
# An image forced off its last name while a running container uses it
# stays, untagged (listed with placeholders to clients before API 1.43);
# a container can be committed after its image's name is gone.
c = api.create_container("busybox", ["touch", "/x"])
only = api.commit(c, repository="pyrmi", tag="only")["Id"]
api.remove_container(c)
c = api.create_container("pyrmi:only", ["sleep", "1000"])
api.start(c)
assert api.remove_image("pyrmi:only", force=True) == [{"Untagged": "pyrmi:only"}]
listed = [i for i in api.images(all=True) if i["Id"] == only]
assert len(listed) == 1 and not listed[0]["RepoTags"], listed
listed = [i for i in old_client.images(all=True) if i["Id"] == only]
assert (listed[0]["RepoTags"], listed[0]["RepoDigests"]) == (["<none>:<none>"], ["<none>@<none>"]), listed
assert api.inspect_container(c)["Image"] == only
committed = api.commit(c)["Id"]
assert api.inspect_image(committed)["Parent"] == only
api.remove_container(c, force=True)
# Its untagged parent, used by nothing now, goes with it (dockerd's prune).
gone = api.remove_image(committed)
# (with the layers freed with them, as dockerd lists them too)
assert [x for x in gone if x.get("Deleted") in (committed, only)] == [{"Deleted": committed}, {"Deleted": only}], gone
assert all(list(x) == ["Deleted"] for x in gone), gone
assert not [i for i in api.images(all=True) if i["Id"] == only]
# Only stopped containers use it: forced off its last name, it goes.
api.tag("busybox", "pyrmi", "other")
c = api.create_container("pyrmi:other", ["true"])
api.tag("busybox", "pyrmi", "kept")
api.commit(c, repository="pyrmi", tag="gone")
g = api.create_container("pyrmi:gone", ["true"])
gone_id = api.inspect_image("pyrmi:gone")["Id"]
assert api.remove_image("pyrmi:gone", force=True) == [{"Untagged": "pyrmi:gone"}, {"Deleted": gone_id}]
api.remove_image("pyrmi:other", force=True)
committed = api.commit(c)["Id"]  # its image kept other names
api.remove_container(c)
api.remove_container(g)
api.remove_image(committed)
api.remove_image("pyrmi:kept")
# The local driver's options, as dockerd's: a volume that binds a host
# directory (compose's driver_opts: type none, o bind, device) is mounted
# while containers use it and let go after; removing the volume leaves the
# directory's files alone. A tmpfs volume's content goes with its mount.
host_dir = tempfile.mkdtemp(prefix="berth-volopt")
with open(os.path.join(host_dir, "from-host"), "w") as f:
    f.write("host file")
try:
    v = api.create_volume("pybindvol", driver_opts={"type": "none", "o": "bind", "device": host_dir})
    assert v["Options"] == {"type": "none", "o": "bind", "device": host_dir}, v
    out = client.containers.run("busybox", ["sh", "-c", "cat /v/from-host; echo made > /v/from-ctr"],
                                volumes={"pybindvol": {"bind": "/v"}}, remove=True)
    assert out == b"host file", out
    assert open(os.path.join(host_dir, "from-ctr")).read() == "made\n"
    mounted = [l.split()[4] for l in open("/proc/self/mountinfo")]
    assert v["Mountpoint"] not in mounted, "the volume stayed mounted with no container"
    api.remove_volume("pybindvol")
    assert sorted(os.listdir(host_dir)) == ["from-ctr", "from-host"], os.listdir(host_dir)
    # Over a path the image has files at, a directory with files of its own
    # is not filled from the image.
    api.create_volume("pyetcvol", driver_opts={"type": "none", "o": "bind", "device": host_dir})
    out = client.containers.run("busybox", ["ls", "/etc"], volumes={"pyetcvol": {"bind": "/etc"}},
                                remove=True)
    assert b"from-host" in out.split() and b"passwd" not in out.split(), out
    api.remove_volume("pyetcvol")
    assert "passwd" not in os.listdir(host_dir), os.listdir(host_dir)
finally:
    for n in os.listdir(host_dir):
        os.unlink(os.path.join(host_dir, n))
    os.rmdir(host_dir)
# Each mount option needs its partner, as the local driver checks them.
api_error(400, 'create lt-vo: missing required option: "device"', api.create_volume, "lt-vo", driver_opts={"o": "size=1m"})
api_error(400, 'create lt-vo: missing required option: "type"', api.create_volume, "lt-vo", driver_opts={"device": "tmpfs"})
api_error(400, 'create lt-vo: missing required option: "device"', api.create_volume, "lt-vo", driver_opts={"type": "tmpfs"})
assert "lt-vo" not in [v.name for v in client.volumes.list()]
# Labels and driver options are shown as they were sent: none is null, an
# empty object {}, as dockerd keeps them.
v = api.create_volume("lt-nolabels")
assert v["Labels"] is None and v["Options"] is None, v
v = api.create_volume("lt-emptylabels", labels={}, driver_opts={})
assert v["Labels"] == {} and v["Options"] == {}, v
assert api.inspect_volume("lt-emptylabels")["Labels"] == {}
assert api.inspect_volume("lt-nolabels")["Labels"] is None
api.remove_volume("lt-nolabels")
api.remove_volume("lt-emptylabels")
# GraphDriver.Data says where the container's files are on the host, as
# overlay2's does: its changes in UpperDir, the whole tree at MergedDir
# while it runs; an image's top layer in UpperDir.
gd = client.containers.run("busybox", ["sh", "-c", "echo hi > /made; sleep 30"], detach=True)
try:
    data = api.inspect_container(gd.id)["GraphDriver"]["Data"]
    assert set(data) == {"LowerDir", "UpperDir", "WorkDir", "MergedDir"}, data
    made = os.path.join(data["UpperDir"], "made")
    for _ in range(100):
        if os.path.exists(made):
            break
        time.sleep(0.05)
    assert open(made).read() == "hi\n"
    assert os.path.isfile(os.path.join(data["MergedDir"], "bin", "busybox")), data
    assert all(os.path.isdir(d) for d in data["LowerDir"].split(":")), data
finally:
    gd.remove(force=True)
image_data = api.inspect_image("busybox")["GraphDriver"]["Data"]
assert os.path.isfile(os.path.join(image_data["UpperDir"], "bin", "busybox")), image_data
api.create_volume("pytmpvol", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
out = client.containers.run("busybox", ["sh", "-c", "echo x > /v/f; df -k /v | tail -1"],
                            volumes={"pytmpvol": {"bind": "/v"}}, remove=True)
assert out.split()[1] == b"1024", out  # its size, in KiB
out = client.containers.run("busybox", ["sh", "-c", "ls /v"], volumes={"pytmpvol": {"bind": "/v"}},
                            remove=True)
assert out == b"", out
api.remove_volume("pytmpvol")
api_error(400, 'invalid option: "nosuch"', api.create_volume, "pybadopt",
          driver_opts={"nosuch": "x"})
api_error(400, "invalid file system type", api.create_volume, "pybadtype",
          driver_opts={"type": "-oremount", "device": "/"})
api.create_volume("pybaddev", driver_opts={"type": "none", "o": "bind", "device": "/no/such/dir"})
c = api.create_container("busybox", ["true"], host_config=api.create_host_config(
    binds=["pybaddev:/v"]))
api_error(500, "error while mounting volume", api.start, c)
api.remove_container(c)
api.remove_volume("pybaddev")
print("dockerd's shapes: ok", flush=True)
# IPC modes as dockerd's: a container that joins a shareable one's IPC
# shares its namespace and its /dev/shm (POSIX shared memory), which lives
# on the host only while the donor runs; a private one cannot be joined,
# nor one that is not running; "none" has no /dev/shm; a mode names the
# container it joins by id, and one naming no container is refused.
donor = api.create_container("busybox", ["sh", "-c", "echo shared > /dev/shm/x && sleep 1000"],
                             name="pyipcdonor", host_config=api.create_host_config(
                                 ipc_mode="shareable", shm_size="2m"))["Id"]
api.start(donor)
for _ in range(100):
    if api.exec_start(api.exec_create(donor, ["cat", "/dev/shm/x"])) == b"shared\n":
        break
    time.sleep(0.05)
joiner = api.create_container("busybox", ["sh", "-c",
                              "cat /dev/shm/x; df -k /dev/shm | tail -1; readlink /proc/self/ns/ipc"],
                              host_config=api.create_host_config(ipc_mode="container:pyipcdonor"))
assert api.inspect_container(joiner)["HostConfig"]["IpcMode"] == "container:" + donor
api.start(joiner)
assert api.wait(joiner)["StatusCode"] == 0
lines = api.logs(joiner).decode().splitlines()
assert lines[0] == "shared", lines
assert lines[1].split()[1] == "2048", lines  # the donor's size, in KiB
ns = api.exec_start(api.exec_create(donor, ["readlink", "/proc/self/ns/ipc"])).decode().strip()
assert lines[2] == ns, (lines, ns)
api.remove_container(joiner)
mine = client.containers.run("busybox", ["readlink", "/proc/self/ns/ipc"], remove=True)
assert mine.decode().strip() != ns, (mine, ns)
api.stop(donor, timeout=0)
with open("/proc/self/mountinfo") as f:
    assert f"{donor}/mounts/shm" not in f.read(), "the donor's /dev/shm stayed mounted"
joiner = api.create_container("busybox", ["true"], host_config=api.create_host_config(
    ipc_mode="container:" + donor))
api_error(500, f"can't join IPC of container {donor}: container {donor} is not running",
          api.start, joiner)
api.remove_container(joiner)
api.remove_container(donor)
private = api.create_container("busybox", ["sleep", "1000"])["Id"]
api.start(private)
joiner = api.create_container("busybox", ["true"], host_config=api.create_host_config(
    ipc_mode="container:" + private))
api_error(500, f"can't join IPC of container {private}: non-shareable IPC (hint: use "
          "IpcMode:shareable for the donor container)", api.start, joiner)
api.remove_container(joiner)
api.remove_container(private, force=True)
out = client.containers.run("busybox", ["sh", "-c", "test -e /dev/shm; echo $?"], ipc_mode="none",
                            remove=True)
assert out == b"1\n", out
api_error(400, "No such container: pynosuch", api.create_container, "busybox", ["true"],
          host_config=api.create_host_config(ipc_mode="container:pynosuch"))
api_error(400, "No such container: pynosuch", api.create_container, "busybox", ["true"],
          host_config=api.create_host_config(pid_mode="container:pynosuch"))
c = api.create_container("busybox", ["true"], host_config=api.create_host_config(ipc_mode="bogus"))
api_error(500, "Invalid IPC mode: bogus", api.start, c)
api.remove_container(c)
print("ipc modes: ok", flush=True)
# History as dockerd tells it: an import says where it came from, a commit
# the container's command; each row along the image's parents carries
# that image's id and tags, and its layer's size.
with open(sys.argv[1], "rb") as f:
    api.import_image_from_data(f.read(), repository="pyhist", tag="base")
base = api.inspect_image("pyhist:base")["Id"]
h = api.history("pyhist:base")
assert len(h) == 1, h
assert (h[0]["Id"], h[0]["Tags"], h[0]["CreatedBy"], h[0]["Comment"]) == (
    base, ["pyhist:base"], "", "Imported from -"), h
assert h[0]["Size"] > 0, h
c = api.create_container("pyhist:base", ["sh", "-c", "echo x > /f"])
api.start(c)
api.wait(c)
top = api.commit(c, repository="pyhist", tag="top", message="made here")["Id"]
api.remove_container(c)
h = api.history("pyhist:top")
assert [r["Id"] for r in h] == [top, base], h
assert (h[0]["Tags"], h[0]["CreatedBy"], h[0]["Comment"]) == (
    ["pyhist:top"], "sh -c echo x > /f", "made here"), h
assert 0 < h[0]["Size"] < h[1]["Size"], h
assert h[1]["Tags"] == ["pyhist:base"], h
api.remove_image("pyhist:top")
api.remove_image("pyhist:base")
print("history: ok", flush=True)
# Not-found answers worded as dockerd's: an image by its normalized name,
# kill saying what it could not do, a connect or disconnect looking up the
# container first; events refuse a `since` after `until`.
api_error(404, "No such image: pynosuch:latest", api.inspect_image, "pynosuch")
api_error(404, "No such image: pynosuch:latest", api.remove_image, "pynosuch")
api_error(404, "Cannot kill container: pynosuch: No such container: pynosuch", api.kill,
          "pynosuch")
api_error(404, "No such container: pynosuch", api.disconnect_container_from_network,
          "pynosuch", "pynonet")
api_error(404, "No such container: pynosuch", api.connect_container_to_network,
          "pynosuch", "pynonet")
r = api._get(api._url("/events"), params={"since": "200", "until": "100"})
assert r.status_code == 400, r.status_code
assert r.json()["message"] == "`since` time (200) cannot be after `until` time (100)", r.text
print("not found: ok", flush=True)
# Saving a repository by name saves every tag it has, as dockerd.
api.tag("busybox", "pysave", "a")
api.tag("busybox", "pysave", "b")
data = b"".join(api.get_image("pysave"))
with tarfile.open(fileobj=io.BytesIO(data)) as t:
    manifest = json.load(t.extractfile("manifest.json"))
assert sorted(sum((m["RepoTags"] or [] for m in manifest), [])) == ["pysave:a", "pysave:b"], manifest
api.remove_image("pysave:a")
api.remove_image("pysave:b")
print("save: ok", flush=True)
# Prune filters as dockerd applies them: `until` spares what is newer,
# `label!` what carries the label (berth once ignored both and pruned all).
for tag, changes in (("keep", ["LABEL pyprune=1 keep=1"]), ("go", ["LABEL pyprune=1"])):
    c = api.create_container("busybox", ["true"])
    api.commit(c, repository="pyprune", tag=tag, changes=changes)
    api.remove_container(c)
spared = api.prune_images(filters={"dangling": False, "label": ["pyprune"], "until": "1h"})
assert not spared["ImagesDeleted"], spared
gone = api.prune_images(filters={"dangling": False, "label": ["pyprune"], "label!": ["keep"]})
assert [x for x in gone["ImagesDeleted"] if "Untagged" in x] == [{"Untagged": "pyprune:go"}], gone
api.remove_image("pyprune:keep")
for name, labels in (("pypkeep", {"pyprune": "1", "keep": "1"}), ("pypgo", {"pyprune": "1"})):
    api.create_network(name, labels=labels)
    api.create_volume(name, labels=labels)
assert not api.prune_networks(filters={"label": ["pyprune"], "until": "1h"})["NetworksDeleted"]
assert api.prune_networks(filters={"label": ["pyprune"], "label!": ["keep"]})["NetworksDeleted"] == ["pypgo"]
api.remove_network("pypkeep")
volumes = {"label": ["pyprune"], "label!": ["keep"]}
if docker.utils.version_gte(api._version, "1.42"):
    volumes["all"] = ["true"]  # named ones too (older APIs prune them anyway)
gone = api.prune_volumes(filters=volumes)
assert gone["VolumesDeleted"] == ["pypgo"], gone
api.remove_volume("pypkeep")
print("prune filters: ok", flush=True)
# ps filters publish (host ports) and expose (container ports), ranges and
# protocols as dockerd reads them (berth once ignored both).
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    hostport = probe.getsockname()[1]
c = api.create_container("busybox", ["sleep", "1000"], ports=[80, 81],
                         host_config=api.create_host_config(port_bindings={80: hostport}))["Id"]
api.start(c)
def listed(**filters):
    return c in [x["Id"] for x in api.containers(filters=filters)]
assert listed(publish=str(hostport)), api.containers()
assert listed(publish=f"{hostport - 1}-{hostport + 1}/tcp"), api.containers()
assert not listed(publish="80") and not listed(publish=f"{hostport}/udp")
assert listed(expose="81") and listed(expose="80") and not listed(expose="81/udp")
try:  # dockerd answers 500, berth 400: the caller's mistake, named
    api.containers(filters={"publish": "x"})
    raise AssertionError("a bad publish filter was taken")
except docker.errors.APIError as e:
    assert "publish x" in str(e.explanation), e.explanation
api.remove_container(c, force=True)
print("ps port filters: ok", flush=True)
# docker search asks the index the term names (a registry on this machine
# here, playing Docker Hub's index with its v1 search), with dockerd's
# limit and filters.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import search_index  # noqa: E402
index, where, asked = search_index.serve()
def search(term, **params):  # limit and filters as the API takes them
    params["term"] = term
    if "filters" in params:
        params["filters"] = json.dumps(params["filters"])
    return api._result(api._get(api._url("/images/search"), params=params), True)
try:
    found = api.search(f"{where}/pyfind")
    assert [r["name"] for r in found] == [f"pyfind-{i}" for i in range(5)], found
    assert found[0] == {"name": "pyfind-0", "description": "number 0", "star_count": 0,
                        "is_official": True, "is_automated": False}, found[0]
    assert ("/v1/search", {"q": ["pyfind"], "n": ["25"]}) in asked, asked
    found = search(f"{where}/pyfind", limit=3, filters={"stars": ["2"]})
    assert [r["name"] for r in found] == ["pyfind-2", "pyfind-3", "pyfind-4"], found
    assert ("/v1/search", {"q": ["pyfind"], "n": ["3"]}) in asked, asked
    found = search(f"{where}/pyfind", filters={"is-official": ["true"]})
    assert [r["name"] for r in found] == ["pyfind-0"], found
    api_error(400, "Limit 101 is outside the range of [1, 100]", search, f"{where}/x", limit=101)
    api_error(400, "Invalid filter 'stars=many'", search, f"{where}/x", filters={"stars": ["many"]})
finally:
    index.shutdown()
    index.server_close()
api_error(500, "", api.search, f"{where}/pyfind")
print("search: ok", flush=True)
# A runtime nobody knows, an address on a network whose subnet was picked
# for it: refused in dockerd's words.
api_error(400, "Unknown runtime specified foobar", api.create_container, "busybox", ["true"],
          runtime="foobar")
api.create_network("pyautonet")
c = api.create_container("busybox", ["true"])
api_error(400, "user specified IP address is supported only when connecting to networks with "
          "user configured subnets", api.connect_container_to_network, c, "pyautonet",
          ipv4_address="10.99.0.5")
api.remove_container(c)
api.remove_network("pyautonet")
print("runtime and address refusals: ok", flush=True)
# --volumes-from: another container's volumes and binds (not its tmpfs),
# read-only with ":ro"; an anonymous volume stays while a container that
# took it exists and goes with the last one removed with -v.
host_dir = tempfile.mkdtemp()
try:
    donor = api.create_container(
        "busybox", ["sh", "-c", "echo data > /anon/f; echo bound > /bound/g"],
        volumes=["/anon", "/bound"], name="pyvfdonor",
        host_config=api.create_host_config(binds={host_dir: {"bind": "/bound", "mode": "rw"}},
                                           tmpfs={"/t": ""}))["Id"]
    api.start(donor)
    api.wait(donor)
    anon = [m["Name"] for m in api.inspect_container(donor)["Mounts"] if m["Destination"] == "/anon"][0]
    taker = api.create_container(
        "busybox", ["sh", "-c", "cat /anon/f /bound/g; grep -c ' /t ' /proc/mounts; touch /anon/x"],
        host_config=api.create_host_config(volumes_from=["pyvfdonor:ro"]))["Id"]
    mounts = {m["Destination"]: m for m in api.inspect_container(taker)["Mounts"]}
    assert sorted(mounts) == ["/anon", "/bound"], mounts
    assert mounts["/anon"]["Name"] == anon and not mounts["/anon"]["RW"], mounts
    assert mounts["/bound"]["Source"] == host_dir and not mounts["/bound"]["RW"], mounts
    api.start(taker)
    assert api.wait(taker)["StatusCode"] == 1
    out = api.logs(taker).decode()
    assert out.startswith("data\nbound\n0\n") and "Read-only file system" in out, out
    rw = client.containers.run("busybox", ["sh", "-c", "touch /anon/y && ls /anon"],
                               volumes_from=["pyvfdonor"], remove=True)
    assert sorted(rw.split()) == [b"f", b"y"], rw
    api.remove_container(donor, v=True)
    assert api.inspect_volume(anon)["Name"] == anon
    api.remove_container(taker, v=True)
    api_error(404, "", api.inspect_volume, anon)
    api_error(400, "No such container: pynosuch", api.create_container, "busybox", ["true"],
              host_config=api.create_host_config(volumes_from=["pynosuch"]))
finally:
    for n in os.listdir(host_dir):
        os.unlink(os.path.join(host_dir, n))
    os.rmdir(host_dir)
print("volumes-from: ok", flush=True)
# As dockerd: --platform must match the local image (a 404, on which
# clients pull), warnings for what is deprecated or risky, --gpus refused
# at start (no device driver), dockerd's words for bad capabilities and
# volume drivers.
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
other = "arm64" if arch == "amd64" else "amd64"
def create_for(platform):  # (docker-py 5 has no platform argument)
    r = api._post_json(api._url("/containers/create"), data={"Image": "busybox", "Cmd": ["true"]},
                       params={"platform": platform})
    return api._result(r, True)
api_error(404, f"image with reference busybox was found but does not match the specified "
          f"platform: wanted linux/{other}, actual: linux/{arch}", create_for, f"linux/{other}")
api.remove_container(create_for(f"linux/{arch}"))
api_error(400, '"bogus": unknown operating system or architecture', create_for, "bogus")
c = api.create_container("busybox", ["true"], host_config=api.create_host_config(
    oom_kill_disable=True, kernel_memory="10m"))
assert sorted(c["Warnings"]) == [
    "OOM killer is disabled for the container, but no memory limit is set, this can result in "
    "the system running out of resources.",
    "Specifying a kernel memory limit is deprecated and will be removed in a future release."], c
api.remove_container(c)
c = api.create_container("busybox", ["true"], host_config=api.create_host_config(
    device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]))
api_error(500, 'could not select device driver "" with capabilities: [[gpu]]', api.start, c)
api.remove_container(c)
api_error(400, 'invalid CapAdd: unknown capability: "CAP_NOSUCH"', api.create_container,
          "busybox", ["true"], host_config=api.create_host_config(cap_add=["NOSUCH"]))
api_error(404, 'create pyvx: error looking up volume plugin nosuchdriver: plugin "nosuchdriver" '
          'not found', api.create_volume, "pyvx", driver="nosuchdriver")
print("dockerd's refusals and warnings: ok", flush=True)
# volume rm --force forgives a volume that is not there, never one a
# container has (berth's once deleted it from under the container).
api.create_volume("pyinuse")
c = api.create_container("busybox", ["true"], host_config=api.create_host_config(
    binds=["pyinuse:/d"]))
def remove_forced(name):  # (docker-py 5 drops remove_volume's force)
    api._raise_for_status(api._delete(api._url("/volumes/{0}", name), params={"force": "1"}))
api_error(409, "remove pyinuse: volume is in use", remove_forced, "pyinuse")
assert api.inspect_volume("pyinuse")["Name"] == "pyinuse"
api.remove_container(c)
api.remove_volume("pyinuse")
remove_forced("pynosuchvol")
api_error(404, "no such volume", api.remove_volume, "pynosuchvol")
print("volume rm --force: ok", flush=True)

# The classic builder as dockerd's: a quiet build answers the image id
# alone (a failed one first tells what it held), a base without PATH gets
# the default one, HEALTHCHECK in history as Go prints it.
def build_lines(dockerfile, **kw):
    ctx = tempfile.mkdtemp()
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    try:
        return list(api.build(path=ctx, decode=True, **kw))
    finally:
        os.unlink(os.path.join(ctx, "Dockerfile"))
        os.rmdir(ctx)
lines = build_lines("FROM busybox\nHEALTHCHECK --interval=5s CMD true\nRUN echo hi > /hi\n",
                    quiet=True, tag="pyquiet:1")
img = api.inspect_image("pyquiet:1")
assert lines == [{"stream": img["Id"] + "\n"}], lines
assert img["Config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], img["Config"]
hist = [h["CreatedBy"] for h in api.history("pyquiet:1")]
assert '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "true"] "5s" "0s" "0s" \'\\x00\'}' in hist, hist
lines = build_lines("FROM busybox\nRUN exit 3\n", quiet=True)
assert any(l.get("stream", "").startswith("Step 2/2 : RUN exit 3") for l in lines), lines
assert lines[-1]["errorDetail"]["code"] == 3, lines
# dockerd sends a step's line and its end apart, and gives a failure that is
# no command's exit no code (the docker CLI exits 1).
lines = build_lines("FROM busybox\nCOPY missing.txt /\n")
assert {"stream": "Step 2/2 : COPY missing.txt /"} in lines, lines
assert lines[lines.index({"stream": "Step 2/2 : COPY missing.txt /"}) + 1] == {"stream": "\n"}, lines
assert lines[-1]["errorDetail"] == {"message": lines[-1]["error"]}, lines
assert lines[-1]["error"].startswith("COPY failed: file not found in build context"), lines
api.remove_image("pyquiet:1")
print("quiet builds: ok", flush=True)
# Logs: json-file entries carry the labels, variables and tag the log
# options name, `details` shows them; a tail that is no count is all.

c = client.containers.run("busybox", ["sh", "-c", "echo one; echo two"], detach=True,
                          labels={"app": "web 1"}, environment=["TIER=front"], name="pylogattrs",
                          log_config=LogConfig(type="json-file",
                                               config={"labels": "app", "env": "TIER", "tag": "{{.Name}}"}))
c.wait()
def log_text(**params):
    r = api._get(api._url("/containers/{0}/logs", c.id), params=dict(stdout=1, stderr=1, **params))
    api._raise_for_status(r)
    data, out = r.content, b""
    while data:
        n = int.from_bytes(data[4:8], "big")
        out += data[8:8 + n]
        data = data[8 + n:]
    return out.decode()
assert log_text(details=1) == "TIER=front,app=web+1,tag=pylogattrs one\nTIER=front,app=web+1,tag=pylogattrs two\n", log_text(details=1)
assert log_text() == "one\ntwo\n", log_text()
assert log_text(tail="abc") == "one\ntwo\n", log_text(tail="abc")
assert log_text(tail="-3") == "one\ntwo\n", log_text(tail="-3")
assert log_text(tail="1") == "two\n", log_text(tail="1")
c.remove()
c = client.containers.run("busybox", ["true"], detach=True)
c.wait()
assert log_text(details=1) == "", log_text(details=1)
c.remove()
print("logs details and tail: ok", flush=True)
# A variable given bare unsets the default (PATH too: then a bare command
# is not found); resolv.conf is built search, nameservers, options.

out = client.containers.run("busybox", ["/bin/env"], environment=["B", "A=1", "PATH", "HOSTNAME=h"],
                            remove=True).decode().splitlines()
assert out == ["HOSTNAME=h", "A=1", "HOME=/root"], out
c = api.create_container("busybox", ["env"], environment=["PATH"])
# dockerd 24's words around the runtime's (runc's shape: "runc create failed: …").
api_error(400, 'failed to create task for container: failed to create shim task: '
          'OCI runtime create failed: berth-runtime create failed: unable to start container '
          'process: exec: "env": executable file not found in $PATH: unknown', api.start, c)
api.remove_container(c)
out = client.containers.run("busybox", ["cat", "/etc/resolv.conf"], dns=["9.9.9.9"],
                            dns_search=["ex.com"], dns_opt=["ndots:3"], remove=True)
assert out == b"search ex.com\nnameserver 9.9.9.9\noptions ndots:3\n", out
print("env and resolv.conf: ok", flush=True)
# An unknown exec user in dockerd's words (not the runtime's), exec
# variables unset the same way, change commands named in lower case, a
# missing device fails the start (not the create) with a 500.

c = client.containers.run("busybox", ["sleep", "100"], detach=True)
x = api.exec_create(c.id, ["id"], user="nosuchuser")
out = api.exec_start(x)
assert out == b"unable to find user nosuchuser: no matching entries in passwd file\r\n", out
assert api.exec_inspect(x)["ExitCode"] == 126, api.exec_inspect(x)
x = api.exec_create(c.id, ["sh", "-c", "echo $A $B"], environment=["A=1", "HOSTNAME", "B=2"])
assert api.exec_start(x) == b"1 2\n"
x = api.exec_create(c.id, ["env"], environment=["HOSTNAME"])
out = api.exec_start(x)
assert out == b"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nHOME=/root\n", out
api_error(400, "frobnicate is not a valid change command", api.commit, c.id, changes=["FROBNICATE x"])
c.remove(force=True)
c = api.create_container("busybox", ["true"], host_config=api.create_host_config(
    devices=["/dev/nonexist:/dev/x"]))
try:
    api.start(c)
    raise AssertionError("started with a missing device")
except docker.errors.APIError as e:
    assert e.status_code == 500, e.status_code
    assert 'error gathering device information while adding custom device "/dev/nonexist": no such file or directory' in e.explanation, e.explanation
api.remove_container(c)
print("exec user, change commands, devices: ok", flush=True)

# ps as dockerd lists: `ancestor` names an image (and what was built on
# it), a limit counts stopped containers, a container whose image name
# now gives another image (or none) is listed by its image's id.
c0 = api.create_container("busybox", ["true"])
base = api.commit(c0, repository="pyancbase", tag="1")["Id"]
api.remove_container(c0)
c1 = api.create_container("pyancbase:1", ["true"], name="pyanc1")
child = api.commit(c1, repository="pyancchild", tag="1")["Id"]
c2 = api.create_container("pyancchild:1", ["true"], name="pyanc2")
def names(**filters):
    return sorted(x["Names"][0] for x in api.containers(all=True, filters=filters))
assert names(ancestor="pyancbase:1") == ["/pyanc1", "/pyanc2"], names(ancestor="pyancbase:1")
assert names(ancestor=base) == ["/pyanc1", "/pyanc2"], names(ancestor=base)
assert names(ancestor="pyancchild:1") == ["/pyanc2"], names(ancestor="pyancchild:1")
assert names(ancestor="pyancnosuch:1") == [], names(ancestor="pyancnosuch:1")
assert [x["Id"] for x in api.containers(limit=1)] == [c2["Id"]], api.containers(limit=1)
row = lambda c: [x for x in api.containers(all=True) if x["Id"] == c["Id"]][0]
assert row(c1)["Image"] == "pyancbase:1", row(c1)
api.remove_image("pyancbase:1", force=True)
assert row(c1)["Image"] == base, row(c1)
api.tag(child, "pyancbase", "1")
assert row(c1)["Image"] == base, row(c1)
for c in (c1, c2):
    api.remove_container(c)
api.remove_image("pyancbase:1")
api.remove_image("pyancchild:1")
print("ps ancestor, limit and renamed images: ok", flush=True)
# Updates that conflict with what the container has (a memory limit over
# its swap limit: none for one made without a memory limit; CPU period
# over NanoCPUs) are 409s naming it; a memory limit is recorded with its
# default swap limit; rename, top and network type filter in dockerd's
# words.
c = api.create_container("busybox", ["sleep", "100"], name="pyupd")
api.start(c)
api_error(409, "Cannot update container " + c["Id"] + ": Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
          api.update_container, c, mem_limit="64m")
api.update_container(c, mem_limit="64m", memswap_limit="128m")
api_error(409, "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set", lambda: api._result(api._post_json(api._url("/containers/{0}/update", c["Id"]), data={"NanoCpus": 500000000}), True) and api._raise_for_status(api._post_json(api._url("/containers/{0}/update", c["Id"]), data={"CpuPeriod": 100000})))
api.remove_container(c, force=True)
c = api.create_container("busybox", ["true"], host_config=api.create_host_config(mem_limit="64m"))
hc = api.inspect_container(c)["HostConfig"]
assert (hc["Memory"], hc["MemorySwap"]) == (64 << 20, 128 << 20), hc
api.update_container(c, mem_limit="96m")
api_error(409, "update the memoryswap at the same time", api.update_container, c, mem_limit="256m")
api.remove_container(c)
c = api.create_container("busybox", ["sleep", "100"], name="pyren1")
c2 = api.create_container("busybox", ["sleep", "100"], name="pyren2")
api_error(409, 'Error when allocating new name: Conflict. The container name "/pyren2" is already in use', api.rename, c, "pyren2")
api.start(c)
api_error(500, "ps: error: unsupported SysV option", api.top, c, ps_args="-bogus")
api.remove_container(c, force=True)
api.remove_container(c2)
try:  # (a 400 here; dockerd 20.10 answers it with a 500)
    api.networks(filters={"type": "bogus"})
    raise AssertionError("a bogus network type filter was taken")
except docker.errors.APIError as e:
    assert "invalid filter: 'type'='bogus'" in e.explanation, e.explanation
print("update, rename, top, network type: ok", flush=True)

# An empty ENTRYPOINT clears it (null) in commits and builds; a commit
# holds the container's hostname and null for what it lacks; an import's
# message is the image's comment too; the archive of "dir/." is named
# "." with "./" entries (the docker CLI renames a copy by them), a file
# asked for as a directory is not one.
c = api.create_container("busybox", ["true"])
img = api.commit(c, repository="pyep", tag="1", changes=["ENTRYPOINT []"])["Id"]
cfg = api.inspect_image(img)["Config"]
assert (cfg["Entrypoint"], cfg["Cmd"], cfg["Env"], cfg["OnBuild"], cfg["Volumes"]) == (None, ["true"], None, None, None), cfg
assert cfg["Hostname"] == api.inspect_container(c)["Config"]["Hostname"], cfg
api.remove_container(c)
api.remove_image("pyep:1")
ctx = tempfile.mkdtemp()
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write("FROM busybox\nENTRYPOINT []\n")
list(api.build(path=ctx, tag="pyep:2", decode=True))
cfg = api.inspect_image("pyep:2")["Config"]
assert (cfg["Entrypoint"], cfg["Cmd"]) == (None, None), cfg
api.remove_image("pyep:2")
os.unlink(os.path.join(ctx, "Dockerfile"))
os.rmdir(ctx)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    info = tarfile.TarInfo("hello")
    info.size = 2
    t.addfile(info, io.BytesIO(b"hi"))
for message, comment in (("with a message", "with a message"), (None, "Imported from -")):
    params = {"fromSrc": "-", "repo": "pyimpmsg", "tag": "1"}
    if message:
        params["message"] = message
    r = api._post(api._url("/images/create"), data=buf.getvalue(), params=params,
                  headers={"Content-Type": "application/tar"})
    api._raise_for_status(r)
    i = api.inspect_image("pyimpmsg:1")
    assert i["Comment"] == comment, i["Comment"]
    assert api.history("pyimpmsg:1")[0]["Comment"] == comment, api.history("pyimpmsg:1")
    api.remove_image("pyimpmsg:1")
print("empty entrypoints, import comments: ok", flush=True)
c = api.create_container("busybox", ["sh", "-c", "mkdir -p /data/x && echo hi > /data/x/f && sleep 100"])
api.start(c)
for _ in range(50):
    try:
        api.get_archive(c, "/data/x/f")
        break
    except docker.errors.NotFound:
        time.sleep(0.1)
stream, st = api.get_archive(c, "/data/x/.")
names = tarfile.open(fileobj=io.BytesIO(b"".join(stream))).getnames()
assert st["name"] == "." and names == [".", "./f"], (st, names)
stream, st = api.get_archive(c, "/data/x/")
names = tarfile.open(fileobj=io.BytesIO(b"".join(stream))).getnames()
assert st["name"] == "x" and names == ["x", "x/f"], (st, names)
api_error(500, "not a directory", api.get_archive, c, "/data/x/f/")
api.remove_container(c, force=True)
print("archives of a directory's contents: ok", flush=True)

# Run flags checked as dockerd checks them: bind modes (one of each
# kind), mount types and propagation, tmpfs options and paths, cpusets; a
# host port range publishes on a free port in it; per-device block I/O
# limits are applied (they were taken and dropped), a missing device
# fails the start.
def create_raw(**hc):
    r = api._post_json(api._url("/containers/create"), data={"Image": "busybox", "Cmd": ["true"], "HostConfig": hc})
    return api._result(r, True)
def refused(fragment, call, *args, **kwargs):
    """A 400 from berth; dockerd 20.10 answers several of these with a 500."""
    try:
        call(*args, **kwargs)
    except docker.errors.APIError as e:
        assert e.status_code in (400, 500) and fragment in e.explanation, (e.status_code, e.explanation)
        return
    raise AssertionError(f"{fragment}: taken")
refused("invalid mode: ro,rw", create_raw, Binds=["/tmp:/x:ro,rw"])
refused("invalid volume specification: '/tmp:relative': invalid mount config for type \"bind\"", create_raw, Binds=["/tmp:relative"])
try:  # berth refuses it at create, dockerd 20.10 at start
    bad = create_raw(Tmpfs={"/x": "bogus=1"})
except docker.errors.APIError as e:
    assert e.status_code == 400 and 'invalid tmpfs option ["bogus" "1"]' in e.explanation, e.explanation
else:
    refused('invalid tmpfs option ["bogus" "1"]', api.start, bad)
    api.remove_container(bad)
refused("invalid mount path: 'relative' mount path must be absolute", create_raw, Tmpfs={"relative": ""})
refused('invalid mount config for type "bogus": mount type unknown', create_raw, Mounts=[{"Type": "bogus", "Target": "/x"}])
refused('invalid mount config for type "bind": invalid propagation mode: bogus', create_raw,
          Mounts=[{"Type": "bind", "Source": "/tmp", "Target": "/x", "BindOptions": {"Propagation": "bogus"}}])
# What a mount of each type must not carry, in dockerd's words.
for mount, why in [
    ({"Type": "bind", "Target": "/x"}, 'type "bind": field Source must not be empty'),
    ({"Type": "bind", "Source": "/tmp", "Target": "/x", "VolumeOptions": {}},
     'type "bind": field VolumeOptions must not be specified'),
    ({"Type": "volume", "Target": "/x", "BindOptions": {}}, 'type "volume": field BindOptions must not be specified'),
    ({"Type": "volume", "Target": "/x", "ReadOnly": True},
     'type "volume": must not set ReadOnly mode when using anonymous volumes'),
    ({"Type": "tmpfs", "Target": "/x", "Source": "s"}, 'type "tmpfs": field Source must not be specified'),
]:
    refused("invalid mount config for " + why, create_raw, Mounts=[mount])
refused("invalid cgroup namespace mode: Private", create_raw, CgroupnsMode="Private")
refused('invalid port specification: "5-1"', create_raw, PortBindings={"80/tcp": [{"HostPort": "5-1"}]})
refused('invalid port specification: "abc"', create_raw, PortBindings={"abc/tcp": [{"HostPort": "1"}]})
refused("Invalid value abc for cpuset cpus: invalid format: abc", create_raw, CpusetCpus="abc")
ok = create_raw(Tmpfs={"/x": "size=1m,mode=700,noexec"})
api.remove_container(ok)
print("mount and cpuset checks: ok", flush=True)
c = api.create_container("busybox", ["sleep", "100"], ports=[80],
                         host_config=api.create_host_config(port_bindings={80: ("127.0.0.1", "18190-18192")}))
api.start(c)
got = api.inspect_container(c)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
assert got in ("18190", "18191", "18192"), got
api.remove_container(c, force=True)
c = create_raw(BlkioDeviceReadBps=[{"Path": "/dev/berth-nosuch", "Rate": 1048576}])
api_error(500, "stat /dev/berth-nosuch: no such file or directory", api.start, c)
assert api.inspect_container(c)["HostConfig"]["BlkioDeviceReadBps"] == [{"Path": "/dev/berth-nosuch", "Rate": 1048576}]
api.remove_container(c)
st = os.stat("/")
num = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
try:
    devname = [l.split("=", 1)[1].strip() for l in open(f"/sys/dev/block/{num}/uevent") if l.startswith("DEVNAME=")][0]
except (OSError, IndexError):
    devname = None
if devname and os.path.exists(f"/dev/{devname}"):
    out = client.containers.run("busybox", ["sh", "-c", "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device 2>/dev/null || cat /sys/fs/cgroup/io.max"],
                                remove=True, device_read_bps=[{"Path": f"/dev/{devname}", "Rate": 1048576}]).decode()
    assert f"{num} 1048576" in out or f"{num} rbps=1048576" in out, (num, out)
print("port ranges and block I/O limits: ok", flush=True)

# Events as dockerd tells them: the image as the container names it (an
# image filter also matches it without its tag), exec actions as dockerd
# words them, attach, kill for each signal a stop or a forced remove
# sends, die before the network's disconnect, top/export/cp/commit/resize
# events, an untag named by the image's id.
def events_since(t0, **filters):
    return list(api.events(since=t0, until=int(time.time()) + 1, decode=True, filters=filters or None))
t0 = int(time.time())
time.sleep(0.05)
c = api.create_container("busybox", ["sh", "-c", "trap 'exit 0' TERM; sleep 100 & wait"], labels={"tier": "ev9"}, tty=True)
api.start(c)
x = api.exec_create(c, ["true"])
api.exec_start(x)
api.top(c)
api.resize(c, 30, 90)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    t.addfile(tarfile.TarInfo("ev9"), io.BytesIO(b""))
api.put_archive(c, "/tmp", buf.getvalue())
_, _ = api.get_archive(c, "/etc/hostname")
b"".join(api.export(c))
img = api.commit(c, repository="ev9img", tag="1")["Id"]
api.attach(c, stream=False, logs=True)
api.stop(c, timeout=5)
api.remove_image("ev9img:1")
c2 = api.create_container("busybox", ["sleep", "100"], labels={"tier": "ev9"})
api.start(c2)
api.remove_container(c2, force=True)
time.sleep(1.1)
evs = events_since(t0, label="tier=ev9")
acts = [e["Action"] for e in evs]
assert all(e["Actor"]["Attributes"]["image"] == "busybox" for e in evs if e["Type"] == "container"), evs[0]
for a in ["create", "start", "exec_create: true ", "exec_start: true ", "exec_die", "top", "resize",
          "extract-to-dir", "archive-path", "export", "commit", "attach", "kill", "die", "stop", "destroy"]:
    assert a in acts, (a, acts)
assert [e["Actor"]["Attributes"].get("signal") for e in evs if e["Action"] == "kill"] == ["15", "9"], acts
resize = [e for e in evs if e["Action"] == "resize"][0]["Actor"]["Attributes"]
assert (resize["height"], resize["width"]) == ("30", "90"), resize
commit = [e for e in evs if e["Action"] == "commit"][0]["Actor"]["Attributes"]
assert commit["imageID"] == img and commit["imageRef"] == "ev9img:1", commit
assert acts.index("kill") < acts.index("die") < acts.index("stop"), acts
# The image filter: busybox matches the containers' image, with or without a tag.
assert any(e["Action"] == "create" for e in events_since(t0, image="busybox", label="tier=ev9"))
imgs = events_since(t0, type="image")
assert any(e["Action"] == "tag" and e["Actor"]["Attributes"]["name"] == "ev9img:1" for e in imgs), imgs
assert any(e["Action"] == "untag" and e["Actor"]["Attributes"]["name"] == img for e in imgs), imgs
assert any(e["Action"] == "tag" for e in events_since(t0, image="ev9img")), "image filter without the tag"
# die before the network goes (dockerd's order).
died = [(e["Type"], e["Action"]) for e in events_since(t0) if e.get("Actor", {}).get("ID") == c["Id"]
        or e.get("Actor", {}).get("Attributes", {}).get("container") == c["Id"]]
last_die = max(i for i, a in enumerate(died) if a == ("container", "die"))
assert ("network", "disconnect") in died[last_die:], died
api.remove_container(c)
print("events: ok", flush=True)

# The network mode's network named as the docker CLI names it ("default")
# is the default bridge, listed once.
r = api._post_json(api._url("/containers/create"), data={
    "Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "default"},
    "NetworkingConfig": {"EndpointsConfig": {"default": {}}}})
c = api._result(r, True)
assert list(api.inspect_container(c)["NetworkSettings"]["Networks"]) == ["bridge"], api.inspect_container(c)["NetworkSettings"]["Networks"]
api.remove_container(c)

# ps filters dockerd checks before it lists.
def ps_refused(fragment, **filters):
    try:
        api.containers(all=True, filters=filters)
    except docker.errors.APIError as e:
        assert e.status_code in (400, 404, 500) and fragment in e.explanation, e.explanation
        return
    raise AssertionError(f"{filters}: taken")
ps_refused("Unrecognised filter value for health: bogus", health="bogus")
ps_refused("Invalid filter 'is-task=[bogus]'", **{"is-task": "bogus"})
ps_refused('strconv.Atoi: parsing "abc": invalid syntax', exited="abc")
ps_refused("no such container berth-nosuch", since="berth-nosuch")
assert api.containers(all=True, filters={"health": "none", "is-task": "false", "exited": "0"}) is not None
print("ps filter checks: ok", flush=True)

# What dockerd writes into HostConfig at create: /dev/shm's size, the
# cgroup namespace mode, the masked and read-only paths (none for a
# privileged container; empty lists, systempaths=unconfined, mask nothing),
# no pids limit or swappiness for "unset"; empty tmpfs, sysctls and mounts
# are left out.
c = api.create_container("busybox", ["true"], host_config=api.create_host_config(pids_limit=-1, mem_swappiness=-1))
hc = api.inspect_container(c)["HostConfig"]
assert hc["ShmSize"] == 64 << 20, hc["ShmSize"]
assert hc["CgroupnsMode"] == ("private" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "host"), hc["CgroupnsMode"]
assert "/proc/kcore" in hc["MaskedPaths"] and "/proc/sys" in hc["ReadonlyPaths"], hc
assert hc["PidsLimit"] is None and hc["MemorySwappiness"] is None, (hc["PidsLimit"], hc["MemorySwappiness"])
assert not {"Tmpfs", "Sysctls", "Mounts"} & set(hc), hc
api.remove_container(c)
c = api.create_container("busybox", ["true"], host_config=api.create_host_config(privileged=True))
hc = api.inspect_container(c)["HostConfig"]
assert hc["MaskedPaths"] is None and hc["ReadonlyPaths"] is None, hc
api.remove_container(c)
probe = "grep -c ' /proc/' /proc/self/mountinfo; grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1"
r = api._post_json(api._url("/containers/create"), data={
    "Image": "busybox", "Cmd": ["sh", "-c", probe],
    "HostConfig": {"MaskedPaths": [], "ReadonlyPaths": []}})
c = api._result(r, True)["Id"]
assert api.inspect_container(c)["HostConfig"]["MaskedPaths"] == [], api.inspect_container(c)["HostConfig"]["MaskedPaths"]
api.start(c)
api.wait(c)
out = api.logs(c).decode().split()
assert out == ["0"], out
api.remove_container(c)
out = client.containers.run("busybox", ["sh", "-c", probe], remove=True).decode().split()
assert int(out[0]) > 0 and out[1] == "ro", out
print("host config defaults: ok", flush=True)

# Removing an image frees its layers then and there (they stayed on disk
# until a prune), and lists them as dockerd does: the image, then each
# layer nothing else uses, top first; one a container still stands on stays.
before = api.df()["LayersSize"]
c = api.create_container("busybox", ["sh", "-c", "head -c 1048576 /dev/urandom > /big"])
api.start(c)
api.wait(c)
img = api.commit(c, repository="free10", tag="1")["Id"]
api.remove_container(c)
c = api.create_container("free10:1", ["true"])
api.remove_container(c)
assert api.df()["LayersSize"] > before
out = api.remove_image("free10:1")
kinds = [list(x.items())[0] for x in out]
assert kinds[0] == ("Untagged", "free10:1") and kinds[1] == ("Deleted", img), kinds
layers = [v for k, v in kinds[2:] if k == "Deleted"]
assert len(layers) == 1 and layers[0].startswith("sha256:") and layers[0] != img, kinds
assert api.df()["LayersSize"] < before + (1 << 20), (before, api.df()["LayersSize"])
# Another name for busybox goes without a layer: busybox still has it.
api.tag("busybox", "free10", "2")
assert [list(x)[0] for x in api.remove_image("free10:2")] == ["Untagged"]
print("image removal frees layers: ok", flush=True)

# A kill refused is named as dockerd names it.
c = api.create_container("busybox", ["true"])
api_error(409, f"Cannot kill container: {c['Id']}: Container {c['Id']} is not running", api.kill, c["Id"])
api.remove_container(c)

# An ip-range gives the gateway (its first address, none given) and then
# the containers' addresses, never an auxiliary one (one was handed out),
# which no container may ask for either.
base = subnet.rsplit(".", 1)[0]
n = api.create_network("pyrange", options={"com.docker.network.bridge.name": bridge},
    ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
        subnet=subnet, iprange=base + ".128/25", aux_addresses={"a": base + ".129"})]))
c = api.create_container("busybox", ["sleep", "100"], host_config=api.create_host_config(network_mode="pyrange"))
api.start(c)
got = [api.inspect_container(c)["NetworkSettings"]["Networks"]["pyrange"]["IPAddress"]]
api.remove_container(c, force=True)
assert got == [base + ".130"], got
gw = api.inspect_network(n["Id"])["IPAM"]["Config"][0].get("Gateway")
assert gw in (None, base + ".128"), gw
c = api.create_container("busybox", ["sleep", "100"], host_config=api.create_host_config(network_mode="pyrange"),
                         networking_config=api.create_networking_config({"pyrange": api.create_endpoint_config(ipv4_address=base + ".129")}))
api_error(403, "Address already in use", api.start, c)
api.remove_container(c, force=True)
c = api.create_container("busybox", ["sleep", "100"], host_config=api.create_host_config(network_mode="pyrange"))
api.start(c)
c2 = api.create_container("busybox", ["sleep", "100"], host_config=api.create_host_config(network_mode="pyrange"))
api.start(c2)
ips = sorted(api.inspect_container(x)["NetworkSettings"]["Networks"]["pyrange"]["IPAddress"] for x in (c, c2))
# (the next free ones: dockerd's allocator takes the lowest, CNI's
# host-local goes round)
assert all(130 <= int(ip.rsplit(".", 1)[1]) <= 254 for ip in ips), ips
# On the default bridge an address is refused before "already there".
cb = api.create_container("busybox", ["sleep", "100"])
api.start(cb)
api_error(400, "user specified IP address is supported on user defined networks only",
          api.connect_container_to_network, cb, "bridge", ipv4_address=base + ".30")
for x in (c, c2, cb):
    api.remove_container(x, force=True)
api.remove_network(n["Id"])
print("ip-range and auxiliary addresses: ok", flush=True)

# What a container on another's network cannot also ask for; a missing
# one is no 404 (the docker CLI would go and pull the image).
owner = api.create_container("busybox", ["sleep", "100"])
api.start(owner)
mode = "container:" + owner["Id"]
for fragment, kw, hkw in [
    ("conflicting options: hostname and the network mode", {"hostname": "h"}, {}),
    ("conflicting options: dns and the network mode", {}, {"dns": ["1.1.1.1"]}),
    ("conflicting options: custom host-to-IP mapping and the network mode", {}, {"extra_hosts": {"h": "1.2.3.4"}}),
    ("conflicting options: port publishing and the container type network mode", {"ports": [80]}, {"port_bindings": {80: 8080}}),
    ("conflicting options: port exposing and the container type network mode", {"ports": [80]}, {}),
    ("conflicting options: mac-address and the network mode", {"mac_address": "02:42:ac:11:00:02"}, {}),
]:
    api_error(400, fragment, api.create_container, "busybox", ["true"],
              host_config=api.create_host_config(network_mode=mode, **hkw), **kw)
api_error(400, "conflicting options: hostname and the UTS mode", api.create_container, "busybox", ["true"],
          hostname="h", host_config=api.create_host_config(uts_mode="host"))
try:
    c = api.create_container("busybox", ["true"], host_config=api.create_host_config(network_mode="container:pynosuch"))
except docker.errors.APIError as e:  # berth: at create
    assert e.status_code == 400 and "No such container: pynosuch" in e.explanation, (e.status_code, e.explanation)
else:  # dockerd 20.10: at start
    api_error(404, "No such container: pynosuch", api.start, c)
    api.remove_container(c)
api.remove_container(owner, force=True)
api_error(400, "container cannot be connected to multiple networks with one of the networks in private (none) mode",
          api.connect_container_to_network, api.create_container("busybox", ["true"], name="pynone")["Id"], "none")
api.remove_container("pynone")
try:  # dockerd 20.10 answers a 500
    api.create_network("pybad", ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.233.0.0/33")]))
except docker.errors.APIError as e:
    assert e.status_code in (400, 500) and "Invalid subnet 10.233.0.0/33 : invalid CIDR address: 10.233.0.0/33" in e.explanation, e.explanation
else:
    raise AssertionError("a /33 subnet was taken")
print("network mode conflicts: ok", flush=True)

# dockerd's init layer: every container has an empty /.dockerenv and
# /etc/mtab linked to /proc/mounts; diff and commit leave them out,
# export has them.
c = api.create_container("busybox", ["sh", "-c", "stat -c '%a %s' /.dockerenv; readlink /etc/mtab; echo x > /new"])
api.start(c)
api.wait(c)
assert api.logs(c).decode().split("\n")[:2] == ["755 0", "/proc/mounts"], api.logs(c)
assert api.diff(c) == [{"Path": "/new", "Kind": 1}], api.diff(c)
names = tarfile.open(fileobj=io.BytesIO(b"".join(api.export(c))), mode="r|").getnames()
assert ".dockerenv" in names and "etc/mtab" in names, names
img = api.commit(c, repository="pyinit", tag="1")["Id"]
saved = tarfile.open(fileobj=io.BytesIO(b"".join(api.get_image("pyinit:1"))), mode="r:")
manifest = json.load(saved.extractfile("manifest.json"))
top = tarfile.open(fileobj=saved.extractfile(manifest[0]["Layers"][-1]), mode="r|*")
layer = [n.lstrip("./") for n in top.getnames()]
assert "new" in layer and ".dockerenv" not in layer and "etc/mtab" not in layer, layer
api.remove_container(c)
api.remove_image("pyinit:1")
print("init layer files: ok", flush=True)

# On a user network, resolv.conf names Docker's embedded resolver alone,
# which answers at 127.0.0.11 in the container's namespace, also for a
# container that names its own DNS server (the server gets other names).
net = client.networks.create("lt-dns")
try:
    peer = client.containers.run("busybox", "sleep 60", name="lt-dns-peer", network="lt-dns", detach=True)
    out = client.containers.run("busybox", ["sh", "-c", "cat /etc/resolv.conf; nslookup lt-dns-peer 127.0.0.11 >/dev/null && echo found"],
                                network="lt-dns", dns=["10.255.255.1"], dns_search=["ex.test"], remove=True).decode()
    assert out == "search ex.test\nnameserver 127.0.0.11\noptions ndots:0\nfound\n", out
    peer.remove(force=True)
finally:
    net.remove()
print("embedded resolver: ok", flush=True)

# Mounts' modes as dockerd shows them: a named volume "z" (given by -v or
# --mount), an anonymous one none, a read-only one "ro", a bind none.
c = api.create_container("busybox", "true", volumes=["/a", "/b", "/e", "/f", "/c"],
                         host_config=api.create_host_config(
                             binds=["lt-modez:/a", "lt-modez2:/b:ro", "/tmp:/c"],
                             mounts=[docker.types.Mount("/f", "lt-modez3", type="volume")]))
modes = {m["Destination"]: m["Mode"] for m in api.inspect_container(c)["Mounts"]}
assert modes == {"/a": "z", "/b": "ro", "/c": "", "/e": "", "/f": "z"}, modes
api.remove_container(c, v=True)
for v in ("lt-modez", "lt-modez2", "lt-modez3"):
    api.remove_volume(v)
print("mount modes: ok", flush=True)

# A bind's propagation is checked against its source's mount at start, as
# dockerd checks it: a shared bind needs a shared mount, a slave one a
# shared or slave mount; create takes it.
import subprocess
src = tempfile.mkdtemp(prefix="lt-prop-")
slave = None
subprocess.run(["mount", "--bind", src, src], check=True)
try:
    subprocess.run(["mount", "--make-private", src], check=True)
    for mode, words in (("rshared", "not a shared mount"), ("rslave", "not a shared or slave mount")):
        c = api.create_container("busybox", "true", host_config=api.create_host_config(binds=[f"{src}:/p:{mode}"]))
        api_error(500, f"path {src} is mounted on {src} but it is {words}", api.start, c)
        api.remove_container(c)
    subprocess.run(["mount", "--make-shared", src], check=True)
    c = api.create_container("busybox", "true", host_config=api.create_host_config(binds=[f"{src}:/p:rshared"]))
    api.start(c)
    assert api.wait(c)["StatusCode"] == 0
    api.remove_container(c)
    # A slave mount (of the shared one) takes a slave bind, not a shared one.
    slave = tempfile.mkdtemp(prefix="lt-prop-slave-")
    subprocess.run(["mount", "--bind", src, slave], check=True)
    subprocess.run(["mount", "--make-slave", slave], check=True)
    for s_src in (src, slave):
        c = api.create_container("busybox", "true", host_config=api.create_host_config(binds=[f"{s_src}:/p:rslave"]))
        api.start(c)
        assert api.wait(c)["StatusCode"] == 0
        api.remove_container(c)
    c = api.create_container("busybox", "true", host_config=api.create_host_config(binds=[f"{slave}:/p:shared"]))
    api_error(500, f"path {slave} is mounted on {slave} but it is not a shared mount", api.start, c)
    api.remove_container(c)
finally:
    if slave:
        subprocess.run(["umount", "-l", slave])
        os.rmdir(slave)
    subprocess.run(["umount", "-l", src])
    os.rmdir(src)
print("bind propagation: ok", flush=True)

# IPAM.Config shows the gateway the user gave, or the one of a subnet the
# engine picked; a gateway picked in a subnet the user gave is left out.
shown = {}
for name, pool in (("lt-gw-given", docker.types.IPAMPool(subnet="10.233.0.0/24", gateway="10.233.0.9")),
                   ("lt-gw-picked", docker.types.IPAMPool(subnet="10.234.0.0/24"))):
    n = api.create_network(name, ipam=docker.types.IPAMConfig(pool_configs=[pool]))
    shown[name] = api.inspect_network(n["Id"])["IPAM"]["Config"]
    api.remove_network(n["Id"])
assert shown == {"lt-gw-given": [{"Subnet": "10.233.0.0/24", "Gateway": "10.233.0.9"}],
                 "lt-gw-picked": [{"Subnet": "10.234.0.0/24"}]}, shown
n = api.create_network("lt-gw-pool")
cfg = api.inspect_network(n["Id"])["IPAM"]["Config"]
api.remove_network(n["Id"])
assert len(cfg) == 1 and cfg[0]["Gateway"], cfg
print("network gateways shown: ok", flush=True)

# Mounts' modes as given with -v (named volumes "z" when none was given, and
# with --mount), ConsoleSize a pair, published and exposed ports only while
# the container has its network, the endpoint id network inspect shows.
c = api.create_container("busybox", "true", volumes=["/a", "/b", "/g", "/f"],
                         host_config=api.create_host_config(
                             binds=["lt-modes1:/a:rw", "lt-modes2:/b:ro,nocopy", "lt-modes3:/g:nocopy"],
                             mounts=[docker.types.Mount("/f", "lt-modes4", type="volume", read_only=True)]))
modes = {m["Destination"]: m["Mode"] for m in api.inspect_container(c)["Mounts"]}
assert modes == {"/a": "rw", "/b": "ro,nocopy", "/g": "nocopy", "/f": "z"}, modes
assert api.inspect_container(c)["HostConfig"]["ConsoleSize"] == [0, 0]
api.remove_container(c, v=True)
for v in ("lt-modes1", "lt-modes2", "lt-modes3", "lt-modes4"):
    api.remove_volume(v)
net = api.create_network("lt-ports")
c = api.create_container("busybox", "sleep 60", ports=[80, (53, "udp")],
                         host_config=api.create_host_config(port_bindings={80: ("127.0.0.1", None)},
                                                            network_mode="lt-ports"))
assert api.inspect_container(c)["NetworkSettings"]["Ports"] == {}, api.inspect_container(c)["NetworkSettings"]
api.start(c)
ports = api.inspect_container(c)["NetworkSettings"]["Ports"]
assert ports["53/udp"] is None and ports["80/tcp"][0]["HostIp"] == "127.0.0.1", ports
endpoint = api.inspect_container(c)["NetworkSettings"]["Networks"]["lt-ports"]["EndpointID"]
shown = api.inspect_network(net["Id"])["Containers"][c["Id"]]
assert len(endpoint) == 64 and shown["EndpointID"] == endpoint, (endpoint, shown)
assert "DNSNames" not in api.inspect_container(c)["NetworkSettings"]["Networks"]["lt-ports"]
api.stop(c, timeout=1)
assert api.inspect_container(c)["NetworkSettings"]["Ports"] == {}
api.remove_container(c)
api.remove_network(net["Id"])
print("modes, ports and endpoints: ok", flush=True)

# A checked container is unhealthy once it stops (its checks stop with it),
# and starting again when it starts again.
c = api.create_container("busybox", ["sleep", "60"], stop_signal="SIGKILL",
                         healthcheck={"test": ["CMD", "true"], "interval": 100000000})
api.start(c)
for _ in range(100):
    if api.inspect_container(c)["State"]["Health"]["Status"] == "healthy":
        break
    time.sleep(0.05)
assert api.inspect_container(c)["State"]["Health"]["Status"] == "healthy"
api.stop(c, timeout=0)
assert api.inspect_container(c)["State"]["Health"]["Status"] == "unhealthy", api.inspect_container(c)["State"]
api.start(c)
assert api.inspect_container(c)["State"]["Health"]["Status"] == "starting", api.inspect_container(c)["State"]
api.remove_container(c, force=True)
print("health after stop: ok", flush=True)

# system df: how many containers use each image and the bytes it shares
# with others, layers counted once, volumes' users; sizes left out at 0.
v = client.volumes.create("lt-dfvol")
user = client.containers.run("busybox", "sleep 60", detach=True, volumes={"lt-dfvol": {"bind": "/v"}})
idle = client.containers.create("busybox", "true")
user.exec_run(["sh", "-c", "echo hi > /x"])
child = user.commit("lt-dfchild", "1")
df = api.df()
base = [i for i in df["Images"] if "busybox:latest" in i["RepoTags"]][0]
mine = [i for i in df["Images"] if "lt-dfchild:1" in i["RepoTags"]][0]
on_base = [x for x in api.containers(all=True) if x["ImageID"] == base["Id"]]
assert len(on_base) >= 2 and base["Containers"] == len(on_base) and mine["Containers"] == 0, (base, mine)
assert base["SharedSize"] == base["Size"] and mine["SharedSize"] == base["Size"] < mine["Size"], (base, mine)
others = sum(i["Size"] for i in df["Images"] if i["Id"] not in (base["Id"], mine["Id"]))
assert df["LayersSize"] <= mine["Size"] + others, df["LayersSize"]
assert [x["UsageData"]["RefCount"] for x in df["Volumes"] if x["Name"] == "lt-dfvol"] == [1], df["Volumes"]
rows = {x["Id"]: x for x in df["Containers"]}
assert "SizeRw" not in rows[idle.id] and rows[user.id]["SizeRw"] == 3, (rows[idle.id], rows[user.id])
assert df["BuilderSize"] == 0, df
user.remove(force=True); idle.remove(); v.remove(); client.images.remove("lt-dfchild:1")
print("system df: ok", flush=True)

# Image sizes as dockerd counts them: what the layers' files hold (regular
# files' bytes, symlinks' targets, hard links once), not the tars' or the
# compressed blobs' bytes, from the import or commit on.
with tarfile.open(sys.argv[1]) as t:
    held = sum(m.size if m.isreg() else len(m.linkname) if m.issym() else 0 for m in t.getmembers())
with open(sys.argv[1], "rb") as f:
    api.import_image_from_data(f.read(), repository="lt-sizes-base", tag="1")
base = client.images.get("lt-sizes-base:1").attrs["Size"]
assert base == held, (base, held)
c = client.containers.run("lt-sizes-base:1", ["sh", "-c", "echo hello > /x; ln -s /x /y; dd if=/dev/zero of=/big bs=1000 count=50 2>/dev/null"], detach=True)
c.wait()
img = c.commit("lt-sizes", "1")
assert img.attrs["Size"] == base + 50008, (img.attrs["Size"], base)
assert [h["Size"] for h in img.history()][:2] == [50008, base], img.history()
c.remove()
client.images.remove("lt-sizes:1")
client.images.remove("lt-sizes-base:1")
print("image sizes: ok", flush=True)

# Lists the client did not send are null (dockerd's Go nil slices); those it
# sent, even empty, come back as sent.
LISTS = ("Binds", "CapAdd", "CapDrop", "Devices", "DeviceCgroupRules", "DeviceRequests", "ExtraHosts",
         "GroupAdd", "SecurityOpt", "VolumesFrom", "Ulimits", "BlkioWeightDevice", "BlkioDeviceReadBps",
         "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps")
c = api.create_container("busybox", "true")
hc = api.inspect_container(c)["HostConfig"]
assert {k: hc[k] for k in LISTS if hc[k] is not None} == {}, hc
assert api.inspect_container(c)["Config"]["OnBuild"] is None, api.inspect_container(c)["Config"]
api.remove_container(c)
c = api.create_container("busybox", "true", host_config={"CapAdd": [], "CapDrop": ["MKNOD"], "Binds": [],
                                                         "ExtraHosts": ["h:1.2.3.4"], "Ulimits": []})
hc = api.inspect_container(c)["HostConfig"]
assert [hc[k] for k in ("CapAdd", "CapDrop", "Binds", "ExtraHosts", "Ulimits")] == [[], ["MKNOD"], [], ["h:1.2.3.4"], []], hc
api.start(c)
assert api.wait(c)["StatusCode"] == 0
api.remove_container(c)
print("lists as sent: ok", flush=True)

# Addresses and host ports as dockerd's allocators give them: the lowest
# free address of the network (.2 first, and again once its holder is
# gone), host ports one after the other from the kernel's ephemeral range.
net = client.networks.create("lt-addrs", driver="bridge", enable_ipv6=True, ipam=docker.types.IPAMConfig(
    pool_configs=[docker.types.IPAMPool(subnet="10.251.7.0/24"), docker.types.IPAMPool(subnet="fd00:251:7::/64")]))
def addr(c):
    c.reload()
    ep = c.attrs["NetworkSettings"]["Networks"]["lt-addrs"]
    return ep["IPAddress"], ep["GlobalIPv6Address"]
a = client.containers.run("busybox", "sleep 60", detach=True, network="lt-addrs")
b = client.containers.run("busybox", "sleep 60", detach=True, network="lt-addrs")
assert (addr(a), addr(b)) == (("10.251.7.2", "fd00:251:7::2"), ("10.251.7.3", "fd00:251:7::3")), (addr(a), addr(b))
a.remove(force=True)
c = client.containers.run("busybox", "sleep 60", detach=True, network="lt-addrs")
assert addr(c) == ("10.251.7.2", "fd00:251:7::2"), addr(c)
# Its MAC is made of the address, so the address's next holder has the
# same one (peers' ARP caches stay right), as the interface itself says.
mac = c.attrs["NetworkSettings"]["Networks"]["lt-addrs"]["MacAddress"]
assert mac == "02:42:0a:fb:07:02", mac
assert c.exec_run(["cat", "/sys/class/net/eth0/address"]).output.strip() == mac.encode()
b.stop(timeout=0)
b.start()
assert addr(b) == ("10.251.7.3", "fd00:251:7::3"), addr(b)
b.remove(force=True); c.remove(force=True); net.remove()
lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
ports = []
for _ in range(3):
    p = client.containers.run("busybox", "sleep 60", detach=True, ports={"80/tcp": None})
    p.reload()
    ports.append(int(p.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]))
    p.remove(force=True)
# Other engines on this host may take ports between two runs: in order,
# and not given again at once, is what is certain.
assert lo <= ports[0] < ports[1] < ports[2] <= hi, (lo, ports, hi)
print("addresses and ports in order: ok", flush=True)

# A file bound into a container (one file's bind; the engine's
# /etc/hostname, /etc/hosts, /etc/resolv.conf) is copied out as the
# container reads it, not as the empty file under the mount.
d = tempfile.mkdtemp()
src = os.path.join(d, "bound.txt")
with open(src, "w") as f:
    f.write("bound file\n")
c = client.containers.run("busybox", "sleep 60", detach=True, hostname="cphost",
                          volumes={src: {"bind": "/h", "mode": "rw"}})
def one_file(path):
    stream, stat = api.get_archive(c.id, path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
        members = t.getmembers()
        assert len(members) == 1, members
        return members[0].name, t.extractfile(members[0]).read(), stat
name, data, stat = one_file("/h")
assert (name, data, stat["name"], stat["size"]) == ("h", b"bound file\n", "h", 11), (name, data, stat)
for f in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
    name, data, stat = one_file(f)
    assert data and data == c.exec_run(["cat", f]).output, (f, data)
    assert name == stat["name"] == f.rsplit("/", 1)[1] and stat["size"] == len(data), (f, name, stat)
assert one_file("/etc/hostname")[1] == b"cphost\n"
api_error(500, "ot a directory", api.get_archive, c.id, "/h/under")
# Written through them: what an archive holds for a path in a volume goes
# to the volume, even when the archive is put above it; a file mounted
# there is not replaced, as dockerd's extraction cannot unlink it.
c.remove(force=True)
c = client.containers.run("busybox", "sleep 60", detach=True, volumes={"lt-cpvol": {"bind": "/data"}})
def tar_of(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()
assert api.put_archive(c.id, "/", tar_of([("data/in-volume", b"v"), ("top", b"t")]))
assert c.exec_run(["cat", "/data/in-volume", "/top"]).output == b"vt"
other = client.containers.run("busybox", ["cat", "/data/in-volume"], volumes={"lt-cpvol": {"bind": "/data"}}, remove=True)
assert other == b"v", other
hosts = c.exec_run(["cat", "/etc/hosts"]).output
api_error(500, "device or resource busy", api.put_archive, c.id, "/etc", tar_of([("hosts", b"1.2.3.4 mine\n")]))
assert c.exec_run(["cat", "/etc/hosts"]).output == hosts
c.remove(force=True)
client.volumes.get("lt-cpvol").remove()
os.unlink(src)
os.rmdir(d)
print("copies of bound files: ok", flush=True)

# A container on another's network copies out that one's /etc files, the
# ones it reads.
owner = client.containers.run("busybox", "sleep 60", detach=True, hostname="owner")
guest = client.containers.run("busybox", "sleep 60", detach=True, network_mode=f"container:{owner.id}")
for f in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
    stream, stat = api.get_archive(guest.id, f)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
        data = t.extractfile(t.getmembers()[0]).read()
    assert data and data == guest.exec_run(["cat", f]).output, (f, data)
guest.remove(force=True)
owner.remove(force=True)
print("copies of a shared network's files: ok", flush=True)

# An interface on a network without IPv6 has none (no link-local address,
# nothing sent from it), as Docker's; one on a dual-stack network has it.
c = client.containers.run("busybox", "sleep 60", detach=True)
assert c.exec_run(["cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"]).output == b"1\n"
assert b"inet6" not in c.exec_run(["ip", "-6", "addr", "show", "dev", "eth0"]).output
c.remove(force=True)
net = client.networks.create("lt-v6on", enable_ipv6=True, ipam=docker.types.IPAMConfig(
    pool_configs=[docker.types.IPAMPool(subnet="10.251.8.0/24"), docker.types.IPAMPool(subnet="fd00:251:8::/64")]))
c = client.containers.run("busybox", "sleep 60", detach=True, network="lt-v6on")
assert c.exec_run(["cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"]).output == b"0\n"
assert b"fd00:251:8::2/64" in c.exec_run(["ip", "-6", "addr", "show", "dev", "eth0"]).output
c.remove(force=True)
net.remove()
print("IPv6 only where the network has it: ok", flush=True)

# A network is held only by the containers joined to it now (dockerd's
# active endpoints): a created or stopped one configured on it does not
# keep it from `network rm` or prune. Its next start says the network is
# gone: by name before it ever joined, by the id it joined after (a network
# made again under the name is not that one); a disconnect forgets it.
def gone_net():
    return client.networks.create("lt-gone", labels={"lt": "gone"})
n = gone_net()
created = client.containers.create("busybox", "true", network="lt-gone")
assert created.attrs["NetworkSettings"]["Networks"]["lt-gone"]["NetworkID"] == ""
ran = client.containers.run("busybox", "true", network="lt-gone", detach=True)
assert ran.wait()["StatusCode"] == 0
ran.reload()
assert ran.attrs["NetworkSettings"]["Networks"]["lt-gone"]["NetworkID"] == n.id
running = client.containers.run("busybox", "sleep 60", network="lt-gone", detach=True)
api_error(403, "has active endpoints", n.remove)
running.remove(force=True)
assert "lt-gone" in [x.name for x in client.networks.list(filters={"dangling": True})]
assert api.prune_networks(filters={"label": "lt=gone"})["NetworksDeleted"] == ["lt-gone"]
api_error(404, "network lt-gone not found", created.start)
api_error(404, f"network {n.id} not found", ran.start)
ran.reload()
assert ran.attrs["NetworkSettings"]["Networks"]["lt-gone"]["NetworkID"] == n.id
again = gone_net()
created.start()
assert created.wait()["StatusCode"] == 0
api_error(404, f"network {n.id} not found", ran.start)
api_error(500, "is not connected to the network lt-none", api.disconnect_container_from_network, ran.id, "lt-none")
api.disconnect_container_from_network(ran.id, "lt-gone")
ran.reload()
assert ran.attrs["HostConfig"]["NetworkMode"] == "lt-gone"
assert ran.attrs["NetworkSettings"]["Networks"] == {}, ran.attrs["NetworkSettings"]["Networks"]
api.connect_container_to_network(ran.id, "lt-gone")
ran.start()
assert ran.wait()["StatusCode"] == 0
ran.reload()
assert ran.attrs["NetworkSettings"]["Networks"]["lt-gone"]["NetworkID"] == again.id
for c in (created, ran):
    c.remove()
again.remove()
print("networks held by their active endpoints: ok", flush=True)

# export: the init layer's files and mount points, as dockerd's gives them
# (empty files and directories, 0755, root's).
c = client.containers.create("busybox", "true")
with tarfile.open(fileobj=io.BytesIO(b"".join(c.export())), mode="r|") as t:
    seen = {m.name.rstrip("/"): m for m in t}
for name in (".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "dev/console"):
    m = seen[name]
    assert m.isfile() and m.size == 0 and m.mode & 0o7777 == 0o755 and m.uid == 0, (name, m.mode, m.size)
for name in ("dev/pts", "dev/shm", "proc", "sys"):
    assert seen[name].isdir(), name
assert seen["etc/mtab"].issym() and seen["etc/mtab"].linkname == "/proc/mounts"
assert c.diff() is None or not [x for x in c.diff() if x["Path"].startswith(("/dev", "/etc/hosts", "/proc", "/sys", "/.dockerenv"))], c.diff()
c.remove()
print("export of the init layer: ok", flush=True)

# A stop signal Linux lacks is taken at create (dockerd's ParseSignal takes
# any number); stop cannot send it: two seconds, then SIGKILL.
c = api.create_container("busybox", ["sleep", "100"], stop_signal="99")
api.start(c)
t0 = time.monotonic()
api.stop(c, timeout=10)
took = time.monotonic() - t0
# (Not the stop's 10 s: the grace of a signal that could not be sent.)
assert 1.5 < took < 9, took
st = api.inspect_container(c)["State"]
assert (st["Status"], st["ExitCode"]) == ("exited", 137), st
api.remove_container(c)
api_error(400, "Invalid signal: 0", api.create_container, "busybox", ["true"], stop_signal="0")
print("stop signals: ok", flush=True)

# Parameters in dockerd's words: Go's parse errors, its tag rules, a wait
# condition it does not know (its default, not-running), an exec's "escape
# keys", a predefined network's name.
c = api.create_container("busybox", ["true"])
def raw(method, path):
    return api._result(getattr(api, "_" + method)(api._url(path)), True)
api_error(400, 'strconv.Atoi: parsing "abc": invalid syntax', raw, "post", f"/containers/{c['Id']}/stop?t=abc")
api_error(400, 'strconv.Atoi: parsing "abc": invalid syntax', raw, "get", "/containers/json?limit=abc")
# Booleans as dockerd's BoolValue reads them: anything but "", 0, no, false
# or none is true (berth took only 1/true/True/yes).
assert c["Id"] in [x["Id"] for x in raw("get", "/containers/json?all=on")]
assert c["Id"] not in [x["Id"] for x in raw("get", "/containers/json?all=no")]
api_error(400, "refusing to create an ambiguous tag using digest algorithm as name", api.tag, "busybox", "sha256")
api_error(400, "invalid tag format", api.tag, "busybox", "x", "bad:tag")
# A pull's platform is read before the registry is asked; this machine's is
# the one berthd pulls, another is refused rather than answered with it.
api_error(400, '"bogus": unknown operating system or architecture: invalid argument',
          api.pull, "busybox", tag="latest", platform="bogus")
api_error(400, "is not supported: this engine pulls linux/", api.pull, "busybox", tag="latest", platform="linux/s390x")
api_error(400, "invalid tag format", api.pull, "busybox", tag="BAD:x")
assert api.wait(c, condition="bogus", timeout=5)["StatusCode"] == 0
api.remove_container(c)
c = api.create_container("busybox", ["sleep", "100"])
api.start(c)
# The list shows each network's whole endpoint, as inspect does (it had
# six of its fields); an exec without a user has none in its inspect.
row = [x for x in api.containers() if x["Id"] == c["Id"]][0]
ep = row["NetworkSettings"]["Networks"]["bridge"]
want = api.inspect_container(c)["NetworkSettings"]["Networks"]["bridge"]
assert set(ep) == set(want) and ep["IPAddress"] == want["IPAddress"], (ep, want)
assert {"BuildTime", "Experimental", "GoVersion"} <= set(api.version()["Components"][0]["Details"])
x = api.exec_create(c, ["true"])
assert "user" not in api.exec_inspect(x)["ProcessConfig"], api.exec_inspect(x)
api_error(400, "Invalid escape keys (bogus) provided", api._result,
          api._post_json(api._url(f"/containers/{c['Id']}/exec"), data={"Cmd": ["true"], "DetachKeys": "bogus"}))
api.remove_container(c, force=True)
api_error(403, "operation is not permitted on predefined host network ", api.create_network, "host")
# A volume request that is not one is refused and makes nothing (it made a
# volume with a generated name).
before = {v["Name"] for v in api.volumes()["Volumes"] or []}
for body in ('{"Name": "pvx", "Labels": {"a": 1}}', '[]', '{"Name": 1}'):
    r = api._post(api._url("/volumes/create"), data=body, headers={"Content-Type": "application/json"})
    api_error(400, "invalid JSON body", api._result, r)
api_error(400, "got EOF while reading request body", api._result, api._post(api._url("/volumes/create")))
assert {v["Name"] for v in api.volumes()["Volumes"] or []} == before, api.volumes()
# A commit whose config has a field of the wrong type makes no image (it
# made one that nothing could read).
c = api.create_container("busybox", ["true"])
api_error(400, "invalid container config: field Cmd", api.commit, c, repository="cmbad", conf={"Cmd": 5})
api_error(404, "cmbad", api.inspect_image, "cmbad")
# A start with a HostConfig (gone since API 1.24), a rename to the same or
# a bad name: dockerd's 400s and words.
api_error(400, "starting container with non-empty request body was deprecated since API v1.22",
          api._result, api._post_json(api._url(f"/containers/{c['Id']}/start"), data={"Binds": ["/tmp:/x"]}))
assert api.inspect_container(c)["State"]["Status"] == "created"
name = api.inspect_container(c)["Name"].lstrip("/")
api_error(400, "Renaming a container with the same name as its current name", api.rename, c, name)
api_error(400, "Error when allocating new name: Invalid container name (/bad/name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
          api.rename, c, "bad/name")
api.remove_container(c)
print("parameters in dockerd's words: ok", flush=True)

# Volume events as dockerd gives them: each volume a container uses is
# "created" with it (an existing one too), mounted at each start, unmounted
# at each stop, and an anonymous one destroyed with rm -v.
since = time.time()
api.create_volume("evv")
c = api.create_container("busybox", ["sleep", "100"], volumes=["/anon"],
                         host_config=api.create_host_config(binds=["evv:/v"]))
api.start(c)
api.stop(c, timeout=0)
api.remove_container(c, v=True)
api.remove_volume("evv")
time.sleep(0.3)
evs = list(api.events(since=since, until=time.time(), filters={"type": "volume"}, decode=True))
seen = [(e["Action"], e["Actor"]["ID"] == "evv") for e in evs]
assert seen == [("create", True), ("create", True), ("create", False), ("mount", True), ("mount", False),
                ("unmount", True), ("unmount", False), ("destroy", False), ("destroy", True)], seen
mount = [e for e in evs if e["Action"] == "mount" and e["Actor"]["ID"] == "evv"][0]["Actor"]["Attributes"]
assert mount == {"container": c["Id"], "destination": "/v", "driver": "local", "propagation": "",
                 "read/write": "true"}, mount
# A stop with no grace still sends the stop signal first, then SIGKILL,
# each a kill event, as dockerd's stop does.
kills = [e["Actor"]["Attributes"]["signal"] for e in
         api.events(since=since, until=time.time(), filters={"container": c["Id"], "event": "kill"}, decode=True)]
assert kills == ["15", "9"], kills
# Prunes tell what they reclaimed; a save tells each image it saved.
since = time.time()
api.prune_networks()
api.prune_volumes()
b"".join(api.get_image("busybox"))
time.sleep(0.3)
evs = list(api.events(since=since, until=time.time(), decode=True))
got = [(e["Type"], e["Action"]) for e in evs]
assert ("network", "prune") in got and ("volume", "prune") in got and ("image", "save") in got, got
assert [e for e in evs if e["Action"] == "prune"][0]["Actor"]["Attributes"] == {"reclaimed": "0"}, evs
save = [e for e in evs if e["Action"] == "save"][0]["Actor"]
assert save["ID"] == api.inspect_image("busybox")["Id"] == save["Attributes"]["name"], save
print("volume events: ok", flush=True)
# `since=0` is every event kept (not only those to come), and a network
# filter keeps a network's events only.
nets = list(api.events(since=0, until=time.time(), filters={"network": "bridge"}, decode=True))
assert nets and all(e["Type"] == "network" for e in nets), [e["Type"] for e in nets]
assert {e["Actor"]["Attributes"]["name"] for e in nets} == {"bridge"}, nets
# dockerd's other filter keys: every event here is local, none is a swarm's.
now = time.time()
assert list(api.events(since=0, until=now, filters={"scope": "local"}, decode=True)), "scope=local"
for f in ({"scope": "swarm"}, {"service": "x"}, {"node": "x"}, {"daemon": "x"}):
    assert list(api.events(since=0, until=now, filters=f, decode=True)) == [], f

# Managed plugins as docker-py's own tests make them: created from a
# directory (argv[4]: config.json and rootfs/), configured, enabled,
# serving a volume, disabled and removed, each refusal dockerd's.
plugin_dir = sys.argv[4]
assert api.create_plugin("berth-test/pyvol", plugin_dir)
p = api.inspect_plugin("berth-test/pyvol")
assert p["Name"] == "berth-test/pyvol:latest" and p["Enabled"] is False, p
assert p["Config"]["Entrypoint"] == ["/usr/bin/python3", "/tvol.py"], p["Config"]
api_error(409, "plugin berth-test/pyvol:latest already exists", api.create_plugin,
          "berth-test/pyvol", plugin_dir)
api.configure_plugin("berth-test/pyvol", {"DEBUG": "py"})
assert "DEBUG=py" in api.inspect_plugin("berth-test/pyvol")["Settings"]["Env"]
api_error(500, '"ROOT" is not settable', api.configure_plugin, "berth-test/pyvol", {"ROOT": "/x"})
assert api.enable_plugin("berth-test/pyvol")
api_error(409, "plugin already enabled", api.enable_plugin, "berth-test/pyvol")
names = [x["Name"] for x in api.plugins()]
assert names == ["berth-test/pyvol:latest"], names
plugin = client.plugins.get("berth-test/pyvol")
assert plugin.enabled and plugin.settings["Env"][0] == "DEBUG=py", plugin.settings
vol = client.volumes.create("pyplugvol", driver="berth-test/pyvol")
assert vol.attrs["Driver"] == "berth-test/pyvol:latest" and vol.attrs["Status"] == {"debug": "py"}, vol.attrs
out = client.containers.run("busybox", ["sh", "-c", "echo py > /v/f; cat /v/f"], remove=True,
                            volumes={"pyplugvol": {"bind": "/v", "mode": "rw"}})
assert out == b"py\n", out
api_error(409, "plugin berth-test/pyvol:latest is in use", api.disable_plugin, "berth-test/pyvol")
vol.remove()
assert api.disable_plugin("berth-test/pyvol")
api_error(409, "plugin is already disabled", api.disable_plugin, "berth-test/pyvol")
assert api.remove_plugin("berth-test/pyvol")
api_error(404, 'plugin "berth-test/pyvol" not found', api.inspect_plugin, "berth-test/pyvol")
assert api.plugins() == []
# Through a registry (argv[5], host:port), as docker-py's plugin calls go:
# pushed, removed, its privileges read, a wrong grant refused, installed
# under a name of its own (the remote's tag added) and upgraded.
remote = sys.argv[5] + "/berth-test/pyvol:1"
assert api.create_plugin(remote, plugin_dir)
# docker-py's push_plugin posts to /plugins/{name}/pull, which dockerd has
# no route for either: the same 404. The push itself, as the CLI sends it.
api_error(404, "page not found", lambda: list(api.push_plugin(remote)))
res = api._post(api._url("/plugins/{0}/push", remote), stream=True)
pushed = list(api._stream_helper(res, decode=True))
assert any(m.get("aux", {}).get("Digest", "").startswith("sha256:") for m in pushed), pushed
assert api.remove_plugin(remote)
privs = api.plugin_privileges(remote)
assert sorted((p["Name"], p["Value"]) for p in privs) == [("mount", ["/usr"]), ("network", ["none"])], privs
lines = list(api.pull_plugin(remote, [], name="pywrong"))
assert any("incorrect privileges" in (m.get("error") or "") for m in lines), lines
assert api.plugins() == []
lines = list(api.pull_plugin(remote, privs, name="pyreg"))
assert not any("error" in m for m in lines), lines
p = api.inspect_plugin("pyreg:1")
assert p["PluginReference"] == remote and p["Enabled"] is False, p
lines = list(api.upgrade_plugin("pyreg:1", remote, privs))
assert not any("error" in m for m in lines), lines
assert api.remove_plugin("pyreg:1")
assert api.plugins() == []
print("plugins: ok", flush=True)

# NetworkDisabled: a loopback only, whatever the mode names; the hostname
# file alone is the engine's (hosts and resolv.conf are the image's, empty
# in the init layer), no port is published or listed, and a connect is
# recorded and gives the container nothing, as dockerd 20.10 answers each
# (dockerd's inspect then shows an address no interface of the container
# has; berth's shows none).
ctr = api.create_container(
    "busybox", ["sh", "-c", "ip -o link | cut -d: -f2; hostname; wc -c /etc/hosts /etc/resolv.conf"],
    network_disabled=True, ports=[80], host_config=api.create_host_config(port_bindings={80: None}))
api.start(ctr)
assert api.wait(ctr)["StatusCode"] == 0
out = api.logs(ctr).decode().split()
assert out[0] == "lo" and out[1] == ctr["Id"][:12], out
assert out[2] == "0" and out[4] == "0", out
i = api.inspect_container(ctr)
assert i["Config"]["NetworkDisabled"] is True, i["Config"]
assert i["NetworkSettings"]["Networks"] == {} and i["NetworkSettings"]["Ports"] == {}, i["NetworkSettings"]
assert (i["HostsPath"], i["ResolvConfPath"]) == ("", ""), i
assert i["HostnamePath"].endswith("/hostname"), i
listed_ctr = [c for c in api.containers(all=True) if c["Id"] == ctr["Id"]][0]
assert listed_ctr["Ports"] == [] and listed_ctr["NetworkSettings"]["Networks"] == {}, listed_ctr
api.remove_container(ctr)
ctr = api.create_container("busybox", ["sleep", "60"], network_disabled=True)
api.start(ctr)
api.connect_container_to_network(ctr, "bridge")
assert api.exec_start(api.exec_create(ctr, ["sh", "-c", "ip -o link | cut -d: -f2"])).split() == [b"lo"]
nets = api.inspect_container(ctr)["NetworkSettings"]["Networks"]
assert list(nets) == ["bridge"], nets
api.remove_container(ctr, force=True)
print("network disabled: ok", flush=True)

# A dangling filter prune cannot read is refused (dockerd's answer), never
# taken for "false", which removes every unused image.
api.tag("busybox", "pykept", "1")
api_error(400, "invalid filter 'dangling=[bogus]'", api.prune_images, filters={"dangling": "bogus"})
assert api.images(name="pykept"), api.images()
api.remove_image("pykept:1")
print("dangling filters: ok", flush=True)

# Found with aiodocker's and bollard's suites against both engines: a volume prune that
# removes nothing lists none ([], as dockerd; its other prunes say null);
# builder prune takes dockerd's filters (`unused-for` is `until`'s old
# name, each a Go duration, `label` taken) and refuses in dockerd's words;
# a build platform that does not parse is refused in containerd's words.
assert api.prune_volumes(filters={"label": ["pynothing"]})["VolumesDeleted"] == [], "volumes"
def build_prune(**filters):
    return api._result(api._post(api._url("/build/prune"), params={"filters": json.dumps(filters)}), True)
assert build_prune(**{"unused-for": ["1h30m"]})["CachesDeleted"] is None
assert build_prune(label=["pynothing"])["CachesDeleted"] is None
api_error(400, "\"until\" filter expects a duration (e.g., '24h'): time: missing unit in duration \"1600000000\"",
          build_prune, until=["1600000000"])
api_error(400, 'conflicting filters: "until" and "unused-for"', build_prune, until=["1h"], **{"unused-for": ["2h"]})
api_error(400, "Invalid filter 'dangling'", build_prune, dangling=["true"])
api_error(400, '"foo": unknown operating system or architecture: invalid argument',
          lambda: build_lines("FROM busybox\n", platform="foo"))
# aiodocker's anonymous push sends `X-Registry-Auth: placeholder`, which
# dockerd takes as no credentials (so does a pull), and its tag parameter
# replaces a tag the name has (a push of `host/app:v1` with tag=v1 is that
# image, not `host/app:v1:v1`); the tag route's too.
api.tag("busybox", "pyretag:1", "2")
assert api.images(name="pyretag:2") and not api.images(name="pyretag:1"), api.images(name="pyretag")
api.remove_image("pyretag:2")
anon = sys.argv[5] + "/pyanon"
api.tag("busybox", anon, "v1")
res = api._post(api._url("/images/{0}/push", anon + ":v1"), params={"tag": "v1"},
                headers={"X-Registry-Auth": "placeholder"}, stream=True)
lines = list(api._stream_helper(res, decode=True))
assert not any("error" in l for l in lines), lines
assert any(l.get("aux", {}).get("Tag") == "v1" for l in lines), lines
api.remove_image(anon + ":v1")
res = api._post(api._url("/images/create"), params={"fromImage": anon, "tag": "v1"},
                headers={"X-Registry-Auth": "bm90IGpzb24="}, stream=True)
lines = list(api._stream_helper(res, decode=True))
assert not any("error" in l for l in lines), lines
api.remove_image(anon + ":v1")
# bollard uploads a gzip'd tar, which dockerd's DecompressStream reads
# (bzip2 and xz too): unpacked, never refused as a broken tar.
c = api.create_container("busybox", ["true"])
for mode in ("w:gz", "w:bz2", "w:xz"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        data = mode.encode()
        ti = tarfile.TarInfo("packed.txt")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    assert api.put_archive(c, "/tmp", buf.getvalue()), mode
    strm, stat = api.get_archive(c, "/tmp/packed.txt")
    with tarfile.open(fileobj=io.BytesIO(b"".join(strm))) as t:
        assert t.extractfile("packed.txt").read() == data, mode
# bollard's own header: path, size, mode and checksum set, uid, gid and
# mtime left empty (all NULs), which Go's archive/tar reads as 0.
h = bytearray(512)
h[:9] = b"loose.txt"
h[100:108] = b"0000644\0"
h[124:136] = b"%011o\0" % 5
h[156:157] = b"0"
h[257:263] = b"ustar "
h[148:156] = b" " * 8
h[148:156] = b"%06o\0 " % sum(h)
assert api.put_archive(c, "/tmp", gzip.compress(bytes(h) + b"loose" + b"\0" * (507 + 1024)))
strm, stat = api.get_archive(c, "/tmp/loose.txt")
with tarfile.open(fileobj=io.BytesIO(b"".join(strm))) as t:
    m = t.getmember("loose.txt")
    assert (t.extractfile(m).read(), m.uid, m.mode & 0o7777) == (b"loose", 0, 0o644), (m.uid, m.mode)
api.remove_container(c)
print("aiodocker's and bollard's findings: ok", flush=True)

# Found with moby's own integration suite (20.10's integration/, run against
# both engines). Go's client sends `buildargs` (labels, cachefrom) as null
# when it has none; a body that is not JSON is refused in Go's decoder's
# words; every Env entry names a variable.
res = api._post(api._url("/build"), data=tar_of([("Dockerfile", b"FROM busybox\nRUN true\n")]),
                params={"buildargs": "null", "labels": "null", "cachefrom": "null", "t": "pynullargs:1"},
                headers={"Content-Type": "application/x-tar"}, stream=True)
lines = list(api._stream_helper(res, decode=True))
assert not any("error" in l for l in lines), lines
assert api.inspect_image("pynullargs:1")["Id"] == [l for l in lines if "aux" in l][-1]["aux"]["ID"]
api.remove_image("pynullargs:1")
def post_text(path, body):
    r = api._post(api._url(path), data=body, headers={"Content-Type": "application/json"})
    return r.status_code, r.json().get("message")
for path in ("/networks/create", "/volumes/create", "/containers/create", "/networks/bridge/connect"):
    assert post_text(path, "{invalid json") == (400, "invalid character 'i' looking for beginning of object key string"), path
    assert post_text(path, '{"Name": "x",') == (400, "unexpected EOF"), path
    assert post_text(path, "") == (400, "got EOF while reading request body"), path
assert post_text("/networks/create", '{"Name": tru}') == (400, "invalid character '}' in literal true (expecting 'e')")
assert sorted(n["Id"] for n in raw("get", "/networks/")) == sorted(n["Id"] for n in raw("get", "/networks"))
for env in ("=", "=foo", ""):
    api_error(400, f"invalid environment variable: {env}", api.create_container, "busybox", "true", environment=[env])
api_error(400, "invalid specification: destination can't be '/'", create_raw, Tmpfs={"//": ""})
# A platform of two words is taken as given: no image has it (404), as
# dockerd's; a word that is no word is refused.
api_error(404, "does not match the specified platform: wanted linuxdifferentos/amd64", create_for, "linuxDifferentOS/amd64")
api_error(400, '"lin ux" is an invalid component of "lin ux/amd64"', create_for, "lin ux/amd64")
print("moby suite: bodies: ok", flush=True)

# A health check that runs out of time says so in Go's duration words; the
# OOM killer's work is State.OOMKilled (and an "oom" event).
c = api.create_container("busybox", ["sleep", "60"], healthcheck={
    "test": ["CMD", "sleep", "10"], "interval": 200_000_000, "timeout": 50_000_000, "retries": 3})
api.start(c)
for _ in range(100):
    log = (api.inspect_container(c)["State"].get("Health") or {}).get("Log") or []
    if log:
        break
    time.sleep(0.1)
assert log and log[0]["Output"] == "Health check exceeded timeout (50ms)", log
api.remove_container(c, force=True)
t0 = int(time.time())
c = api.create_container("busybox", ["sh", "-c", "x=a; while true; do x=$x$x$x$x; done"],
                         host_config=api.create_host_config(mem_limit="32m", memswap_limit="32m"))
api.start(c)
assert api.wait(c, timeout=60)["StatusCode"] == 137
assert api.inspect_container(c)["State"]["OOMKilled"] is True, api.inspect_container(c)["State"]
ev = list(api.events(since=t0, until=int(time.time()) + 1, decode=True,
                     filters={"container": c["Id"], "event": "oom"}))
assert len(ev) == 1, ev
api.remove_container(c)
c = api.create_container("busybox", ["true"], host_config=api.create_host_config(mem_limit="32m"))
api.start(c)
api.wait(c)
assert api.inspect_container(c)["State"]["OOMKilled"] is False
api.remove_container(c)
print("moby suite: health timeout and OOM: ok", flush=True)

# A container answers to its hostname on a user network; in a network
# namespace of its own it has dockerd's sysctls (ping sockets and low ports
# for every user), and the host's on the host's network.
api.create_network("pyhostnet")
c = api.create_container("busybox", ["sleep", "60"], hostname="pyhostalias", user="1000:1000",
                         host_config=api.create_host_config(network_mode="pyhostnet"))
api.start(c)
def sh_in(c, cmd):
    r = client.containers.get(c["Id"] if isinstance(c, dict) else c).exec_run(["sh", "-c", cmd])
    return r.exit_code, r.output.decode()
assert sh_in(c, "nslookup pyhostalias 127.0.0.11 >/dev/null")[0] == 0
assert sh_in(c, "cat /proc/sys/net/ipv4/ping_group_range /proc/sys/net/ipv4/ip_unprivileged_port_start") == \
    (0, "0\t2147483647\n0\n")
api.remove_container(c, force=True)
api.remove_network("pyhostnet")
with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
    host_start = f.read()
out = client.containers.run("busybox", ["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
                            network_mode="host", remove=True)
assert out.decode() == host_start, (out, host_start)
print("moby suite: hostname and sysctls: ok", flush=True)

# Stop between two runs of an `always` policy calls the restart off; a kill
# with a signal that is not the container's stop signal keeps the policy.
c = api.create_container("busybox", ["false"], host_config=api.create_host_config(
    restart_policy={"Name": "always"}))
api.start(c)
for _ in range(100):
    if api.inspect_container(c)["State"]["Restarting"]:
        break
    time.sleep(0.05)
api.stop(c)
st = api.inspect_container(c)
assert st["State"]["Status"] == "exited", st["State"]
time.sleep(2)
assert api.inspect_container(c)["RestartCount"] == st["RestartCount"], "restarted after the stop"
api.remove_container(c)
for stop_signal, status in (("SIGCONT", "running"), ("", "exited")):
    c = api.create_container("busybox", ["sh", "-c", "trap 'exit 0' TERM; sleep 60 & wait"],
                             stop_signal=stop_signal or None,
                             host_config=api.create_host_config(restart_policy={"Name": "always"}))
    api.start(c)
    time.sleep(0.3)
    api.kill(c, "SIGTERM")
    for _ in range(100):
        st = api.inspect_container(c)["State"]
        if st["Status"] == status and (status == "exited" or api.inspect_container(c)["RestartCount"] == 1):
            break
        time.sleep(0.1)
    assert st["Status"] == status, (stop_signal, st)
    api.remove_container(c, force=True)
print("moby suite: stop and kill with restart policies: ok", flush=True)

# PidsLimit updates: 0 and any negative lift the limit (0 in inspect); a
# client older than API 1.40 cannot set it, as dockerd's router drops it.
c = api.create_container("busybox", ["sleep", "60"], host_config=api.create_host_config(pids_limit=32))
api.start(c)
def update(body, version=None):
    url = api._url("/containers/{0}/update", c["Id"])
    if version:
        url = f"{api.base_url}/v{version}/containers/{c['Id']}/update"
    return api._result(api._post_json(url, data=body), True)
update({"PidsLimit": 16}, version="1.39")
assert api.inspect_container(c)["HostConfig"]["PidsLimit"] == 32
for limit in (16, 0, 32, -1, 32, -2):
    update({"PidsLimit": limit})
    assert api.inspect_container(c)["HostConfig"]["PidsLimit"] == max(limit, 0), limit
api.remove_container(c, force=True)
print("moby suite: pids limit updates: ok", flush=True)

# A commit whose name moves on to another image leaves the first untagged,
# and removing the second keeps the first while a container uses it.
c1 = api.create_container("busybox", ["true"])
first = api.commit(c1, repository="pyorphan", tag="1", changes=['ENTRYPOINT ["true"]'])["Id"]
c2 = api.create_container("pyorphan:1", [])
second = api.commit(c2, repository="pyorphan", tag="1", changes=['LABEL m="x"'])["Id"]
assert api.inspect_image("pyorphan:1")["Id"] == second
# (an image another was made from is listed with all, as dockerd lists it)
assert first in [i["Id"] for i in api.images(all=True)]
api.remove_image("pyorphan:1")
assert api.inspect_image(first)["Id"] == first
api_error(404, "No such image", api.inspect_image, second)
api.remove_container(c1)
api.remove_container(c2)
api.remove_image(first)
# Names as Docker's reference grammar reads them: a registry host may have
# capitals, Docker Hub's old name is Docker Hub.
for name in ("HOSTNAME.DOMAIN.COM:443/foo/bar", "index.docker.io/busybox", "index.docker.io/library/busybox"):
    api.tag("busybox", name, "pyref")
api.tag("index.docker.io/busybox:pyref", "pyofficial", "1")
tags = api.inspect_image("busybox")["RepoTags"]
assert "HOSTNAME.DOMAIN.COM:443/foo/bar:pyref" in tags and "busybox:pyref" in tags, tags
assert not any(t.startswith("index.docker.io") for t in tags), tags
for name in ("HOSTNAME.DOMAIN.COM:443/foo/bar:pyref", "busybox:pyref", "pyofficial:1"):
    api.remove_image(name)
api_error(400, "repository name must be lowercase", api.tag, "busybox", "host.com/Foo")
print("moby suite: images: ok", flush=True)

# A legacy link names the linked container in the list, as dockerd's does;
# a copy of "/" names its entries from "/".
a = api.create_container("busybox", ["sleep", "60"], name="pylinka")
api.start(a)
b = api.create_container("busybox", ["sleep", "60"], name="pylinkb",
                         host_config=api.create_host_config(links={"pylinka": "pylinka"}))
api.start(b)
names = [x["Names"] for x in api.containers(filters={"name": "pylinka"})]
assert names == [["/pylinka", "/pylinkb/pylinka"]], names
api.remove_container(b, force=True)
api.remove_container(a, force=True)
c = api.create_container("busybox", ["true"])
strm, stat = api.get_archive(c, "/")
head = b"".join(strm)[:512]
assert stat["name"] == "/" and head[:2] == b"/\0", (stat, head[:16])
api.remove_container(c)
# A context whose entries climb out of it lands them at its top, as dockerd
# unpacks a context in a chroot at its root.
lines = list(api.build(fileobj=io.BytesIO(tar_of([
    ("Dockerfile", b"FROM busybox\nCOPY foo bar /\n"), ("../foo", b"f"), ("/bar", b"b")])),
    custom_context=True, tag="pyunclean:1", decode=True))
assert not any("error" in l for l in lines), lines
assert client.containers.run("pyunclean:1", ["cat", "/foo", "/bar"], remove=True) == b"fb"
api.remove_image("pyunclean:1")
print("moby suite: links, archives and contexts: ok", flush=True)

# Found with moby's integration-cli API tests: requests refused in dockerd's
# words, a local volume mount's mode, execs of a paused or stopped container.
api_error(400, "Config cannot be empty in order to create a container",
          lambda: api._result(api._post_json(api._url("/containers/create"), data={}), True))
api_error(400, "No command specified",
          lambda: api._result(api._post_json(api._url("/containers/create"), data={"Image": ""}), True))
api_error(400, "Container cannot be connected to network endpoints: pynet1, pynet2", api.create_container,
          "busybox", "true", networking_config=api.create_networking_config(
              {"pynet1": api.create_endpoint_config(), "pynet2": api.create_endpoint_config()}))
api_error(400, "maximum retry count cannot be used with restart policy 'always'", create_raw,
          RestartPolicy={"Name": "always", "MaximumRetryCount": 2})
api_error(400, 'invalid mount config for type "bind": field Target must not be empty', create_raw,
          Mounts=[{"Type": "bind", "Source": "/tmp", "Target": ""}])
r = api._get(api.base_url + "/nosuchpath")
assert (r.status_code, r.json()) == (404, {"message": "page not found"}), (r.status_code, r.text)
assert api.options(api.base_url + "/").status_code == 200
c = api.create_container("busybox", "true", host_config=api.create_host_config(
    mounts=[docker.types.Mount("/anon", None, type="volume")]))
assert [m["Mode"] for m in api.inspect_container(c)["Mounts"]] == ["z"], api.inspect_container(c)["Mounts"]
api.remove_container(c, v=True)
c = api.create_container("busybox", ["sleep", "60"])
api.start(c)
missing = api.exec_create(c, ["/no/such/program"])
api_error(400, "no such file or directory", api.exec_start, missing, detach=True)
x = api.exec_create(c, ["true"])
api.pause(c)
api_error(409, f"Container {c['Id']} is paused, unpause the container before exec", api.exec_start, x, detach=True)
api.unpause(c)
api.exec_start(x, detach=True)
x = api.exec_create(c, ["true"])
api.stop(c, timeout=0)
api_error(404, "No such exec instance", api.exec_inspect, x)
api.remove_container(c)
# The network filter takes every network a container is on (by name or id
# prefix), those connected after its start too, as dockerd's.
net = api.create_network("pyfilternet")["Id"]
c = api.create_container("busybox", ["sleep", "60"])
api.start(c)
api.connect_container_to_network(c, "pyfilternet")
for v in ("pyfilternet", net[:6]):
    assert [x["Id"] for x in api.containers(filters={"network": v})] == [c["Id"]], v
assert c["Id"] in [x["Id"] for x in api.containers(filters={"network": "bridge"})]
idle = api.create_container("busybox", ["true"], host_config=api.create_host_config(network_mode="none"))
on_none = [x["Id"] for x in api.containers(all=True, filters={"network": "none"})]
assert idle["Id"] in on_none and c["Id"] not in on_none, on_none
api.remove_container(idle)
api.remove_container(c, force=True)
api.remove_network("pyfilternet")
# Image removal's conflicts in dockerd's order: a parent of another image
# and one a running container uses cannot be removed by id even forced,
# before "referenced in multiple repositories"; the last name of a parent
# goes and the image stays, untagged.
c = api.create_container("busybox", ["true"])
parent = api.commit(c, repository="pyparent", tag="1")["Id"]
api.remove_container(c)
c = api.create_container("pyparent:1", ["true"])
child = api.commit(c, repository="pychild", tag="1")["Id"]
api.remove_container(c)
api.tag("pyparent:1", "pyparent", "2")
api_error(409, f"conflict: unable to delete {parent[7:19]} (cannot be forced) - image has dependent child images",
          api.remove_image, parent, force=True)
api.remove_image("pyparent:1")
api.remove_image("pyparent:2")
assert api.inspect_image(parent)["RepoTags"] == []
api.remove_image("pychild:1")
api_error(404, "No such image", api.inspect_image, parent)
# (an image of its own: busybox has children here, and that conflict
# comes first)
c = api.create_container("busybox", ["true"])
busy = api.commit(c, repository="pybusy", tag="1")["Id"]
api.remove_container(c)
api.tag(busy, "pybusy", "2")
c = api.create_container("pybusy:1", ["sleep", "60"])
api.start(c)
api_error(409, f"conflict: unable to delete {busy[7:19]} (cannot be forced) - image is being used by running container {c['Id'][:12]}",
          api.remove_image, busy)
api.remove_container(c, force=True)
api.remove_image("pybusy:1")
api.remove_image("pybusy:2")
api_error(400, "image name cannot be blank", api.remove_image, " ")
# A create that publishes every port is a few MiB of JSON: read whole, as
# dockerd reads it.
c = api.create_container("busybox", ["true"], ports=list(range(1, 65536)),
                         host_config=api.create_host_config(port_bindings={f"{p}/tcp": p for p in range(1, 65536)}))
assert len(api.inspect_container(c)["HostConfig"]["PortBindings"]) == 65535
api.remove_container(c)
print("moby suite: integration-cli findings: ok", flush=True)

print("longtail: all done")
