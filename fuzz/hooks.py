"""schemathesis check for berthd: no 5xx unless dockerd answers the same
call with a 5xx of its own (listed below, each with why)."""

import re

import schemathesis

# (method, path regex, body regex, why): 5xx answers that are Docker's own
# behaviour, not berth's faults.
ALLOWED = [
    ("GET", r"^/v1\.43/containers/[^/]+/top$", r"ps", "dockerd answers 500 when ps rejects ps_args"),
    ("POST", r"^/v1\.43/images/create$", r"registry|pull|connect|resolv|dns|lookup|network", "a pull from a registry this isolated host cannot reach fails as dockerd's does"),
    ("POST", r"^/v1\.43/images/[^/]+/push$", r"registry|push|connect|resolv|dns|lookup|network", "a push to an unreachable registry"),
    ("GET", r"^/v1\.43/distribution/.+/json$", r"registry|connect|resolv|dns|lookup|network", "a look-up at a registry this isolated host cannot reach fails as dockerd's does (500)"),
    ("POST", r"^/v1\.43/auth$", r"registry|connect|resolv|dns|lookup|network", "a login to an unreachable registry"),
    ("GET", r"^/v1\.43/images/search$", r"registry|index|connect|resolv|dns|lookup|network", "a search of an index this isolated host cannot reach fails as dockerd's does (500)"),
    ("*", r"^/v1\.43/(swarm|nodes|services|tasks|secrets|configs)(/|$)", r"swarm", "dockerd answers 503 on a node that is not part of a swarm"),
    ("*", r"^/v1\.43/plugins/(pull|privileges|.+/push|.+/upgrade)$", r"registry|pull|push|connect|resolv|dns|lookup|network|error sending request", "a plugin's pull or push from a registry this isolated host cannot reach fails as dockerd's does (500)"),
    ("POST", r"^/v1\.43/plugins/.+/set$", r"not settable|not found in the plugin configuration|invalid format|cannot set on an active plugin|multiple fields are settable|has no (mount source|device path)", "dockerd answers 500 to a setting its plugin's config does not allow"),
    ("DELETE", r"^/v1\.43/containers/[^/]+$", r"cannot remove the default link name", "dockerd answers 500 to DELETE ?link=1 naming a container rather than a link"),
    ("GET", r"^/v1\.43/containers/[^/]+/logs$", r"does not support reading", "dockerd answers 501 for the logs of a container whose log driver keeps none"),
    ("POST", r"^/v1\.43/containers/[^/]+/(start|restart)$", r"cpu\.rt_(runtime|period)_us", "dockerd answers 500 when the kernel refuses a container's real-time CPU values at start (its parent has no real-time budget)"),
    ("POST", r"^/v1\.43/containers/[^/]+/(start|restart)$", r"error while mounting volume", "dockerd answers 500 when what a volume's driver options name cannot be mounted"),
    ("PUT", r"^/v1\.43/containers/[^/]+/archive$", r"mounted volume is marked read-only", "dockerd answers 500 to a copy into a read-only volume"),
    ("*", r"^/v1\.43/containers/[^/]+/archive$", r"not a directory", "dockerd answers 500 when lstat finds a file where the path (ending in /) asks for a directory"),
    ("HEAD", r"^/v1\.43/containers/[^/]+/archive$", r"^$", "the same lstat failure on HEAD, whose answer carries no body to tell it by"),
    ("POST", r"^/v1\.43/containers/[^/]+/(start|restart)$", r"error gathering device information", "dockerd answers 500 at start when a device to add is not on the host"),
    ("POST", r"^/v1\.43/containers/[^/]+/(start|restart)$", r"^\{\"message\":\"stat .*: no such file or directory", "dockerd answers 500 at start when a device a block I/O limit names is not on the host"),
    ("POST", r"^/v1\.43/build$", r"remoteURL .* could not be recognized as URL|invalid refspec|error fetching|error downloading remote context|error detecting content type|error setting git context|error checking out|error initializing submodules", "dockerd answers 500 when a remote build context cannot be recognized or fetched (checked side by side with dockerd 20.10)"),
]


@schemathesis.check
def no_undocumented_5xx(ctx, response, case):
    """A 5xx answer must be one dockerd gives for the same call."""
    if response.status_code < 500:
        return
    path = response.request.url.split("://", 1)[-1]
    path = "/" + path.split("/", 1)[-1].split("?", 1)[0]
    body = response.text or ""
    for method, path_re, body_re, _why in ALLOWED:
        if (method in ("*", case.method.upper())
                and re.search(path_re, path)
                and re.search(body_re, body, re.IGNORECASE)):
            return
    raise AssertionError(f"{case.method.upper()} {path} answered {response.status_code}: {body[:300]}")
