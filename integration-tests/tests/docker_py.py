"""docker-py (Debian's python3-docker) against berthd: the same daily work
as the CLI tests, through the Docker SDK unmodified. DOCKER_HOST points at
the test's berthd; argv[1] is a busybox rootfs tarball."""

import io
import sys
import tarfile
import time

import docker

client = docker.from_env(timeout=60)
assert client.ping()
assert client.version()["ApiVersion"] == "1.43"

with open(sys.argv[1], "rb") as f:
    client.api.import_image_from_data(f.read(), repository="busybox", tag="latest",
                                      changes=['CMD ["sh"]'])
image = client.images.get("busybox:latest")
assert "busybox:latest" in image.tags, image.tags

out = client.containers.run("busybox", ["echo", "hello"], remove=True)
assert out == b"hello\n", out

try:
    client.containers.run("busybox", ["sh", "-c", "exit 3"], remove=True)
    raise AssertionError("a failing container did not raise")
except docker.errors.ContainerError as e:
    assert e.exit_status == 3, e.exit_status

c = client.containers.run("busybox", ["sh", "-c", "echo started; exec sleep 1000"],
                          detach=True, name="pyweb", labels={"by": "docker-py"},
                          environment={"GREETING": "hi"})
deadline = time.time() + 10
while b"started" not in c.logs() and time.time() < deadline:
    time.sleep(0.1)
assert c.logs() == b"started\n", c.logs()
c.reload()
assert c.status == "running", c.status
assert c.labels["by"] == "docker-py"
assert "GREETING=hi" in c.attrs["Config"]["Env"]
assert [x.name for x in client.containers.list(filters={"label": "by=docker-py"})] == ["pyweb"]

# Exec: output, exit code, env, user and workdir; both streams apart.
r = c.exec_run(["sh", "-c", "echo $GREETING $X $(id -u) $(pwd); exit 4"],
               environment={"X": "x"}, user="nobody", workdir="/tmp")
assert r.exit_code == 4, r
assert r.output == b"hi x 65534 /tmp\n", r.output
r = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
assert r.output == (b"o\n", b"e\n"), r.output
r = c.exec_run(["nosuchcommand"])
assert r.exit_code == 126, r  # as dockerd 20.10: any exec that cannot start

# Stats: one answer with a CPU interval, and a stream.
st = c.stats(stream=False)
assert st["pids_stats"]["current"] >= 1, st
assert st["memory_stats"]["usage"] > 0, st
assert st["precpu_stats"]["cpu_usage"]["total_usage"] > 0, st
it = c.stats(stream=True, decode=True)
first, second = next(it), next(it)
assert second["precpu_stats"]["cpu_usage"]["total_usage"] == first["cpu_stats"]["cpu_usage"]["total_usage"]
it.close()

# Files in and out.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"from python\n"
    info = tarfile.TarInfo("py.txt")
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))
assert c.put_archive("/tmp", buf.getvalue())
stream, stat = c.get_archive("/tmp/py.txt")
assert stat["name"] == "py.txt", stat
got = io.BytesIO(b"".join(stream))
with tarfile.open(fileobj=got) as t:
    assert t.extractfile("py.txt").read() == b"from python\n"

c.stop(timeout=1)
c.reload()
assert c.status == "exited", c.status
assert c.wait()["StatusCode"] in (137, 143)
c.remove()

vol = client.volumes.create("pyvol")
client.containers.run("busybox", ["sh", "-c", "echo v > /v/f"], volumes={"pyvol": {"bind": "/v", "mode": "rw"}}, remove=True)
out = client.containers.run("busybox", ["cat", "/v/f"], volumes={"pyvol": {"bind": "/v", "mode": "ro"}}, remove=True)
assert out == b"v\n", out
vol.remove()

image.tag("pycopy", "1")
assert "pycopy:1" in client.images.get("pycopy:1").tags
client.images.remove("pycopy:1")

try:
    client.containers.get("nothing-here")
    raise AssertionError("a missing container was found")
except docker.errors.NotFound:
    pass

# Networks: a user network of the test's own subnet and bridge, names
# resolved between its members, connect and disconnect.
if len(sys.argv) > 3:
    subnet, bridge = sys.argv[2], sys.argv[3]
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    net = client.networks.create("pynet", driver="bridge", ipam=ipam,
                                 options={"com.docker.network.bridge.name": bridge})
    assert any(n.name == "pynet" for n in client.networks.list()), client.networks.list()
    srv = client.containers.run("busybox", ["sleep", "600"], name="pysrv", network="pynet", detach=True)
    out = client.containers.run("busybox", ["ping", "-c1", "-W3", "pysrv"], network="pynet", remove=True)
    assert b"1 packets received" in out, out
    net.reload()
    assert [c.name for c in net.containers] == ["pysrv"], net.containers
    lone = client.containers.run("busybox", ["sleep", "600"], name="pylone", detach=True)
    net.connect(lone, aliases=["buddy"])
    lone.reload()
    assert set(lone.attrs["NetworkSettings"]["Networks"]) == {"bridge", "pynet"}, lone.attrs["NetworkSettings"]["Networks"]
    out = client.containers.run("busybox", ["ping", "-c1", "-W3", "buddy"], network="pynet", remove=True)
    assert b"1 packets received" in out, out
    net.disconnect(lone)
    lone.remove(force=True)
    srv.remove(force=True)
    net.remove()
    assert not any(n.name == "pynet" for n in client.networks.list())

assert client.containers.list(all=True) == []
print("docker-py: all done")
