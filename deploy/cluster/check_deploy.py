#!/usr/bin/env python3
"""Structural checks of the deployment files, for deploy/cluster/check.sh (which runs the schema
validators, the linters and the real programs; this file checks what no schema knows).

    check_deploy.py dockerfile            every COPY source is in the build context
    check_deploy.py context DIR           copy the build context (after .dockerignore) into DIR
    check_deploy.py compose               pinned images, mounted files exist, node ids, ports
    check_deploy.py k8s                   ConfigMaps equal their source files, probes, drain
    check_deploy.py env compose|k8s|job   print one node's environment (NAME=VALUE lines) for
                                          loading deploy/cluster/wagu.toml with the real server

Needs PyYAML and dockerfile (the Go BuildKit parser), from the check's pinned venv.
"""

import os
import re
import shutil
import subprocess
import sys

import dockerfile
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}", file=sys.stderr)


def ok(msg):
    print(f"ok   {msg}")


def rel(*p):
    return os.path.join(ROOT, *p)


def load_yaml_all(path):
    with open(rel(path), encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# --- the build context ---------------------------------------------------------------------------


def _pattern_regex(pat):
    """A .dockerignore pattern as a regex (Docker's patternmatcher: `*` and `?` stay within one
    path segment, `**` crosses any number of them)."""
    out, i = "", 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pat.startswith("**", i):
            out += ".*"
            i += 2
        elif c == "*":
            out += "[^/]*"
            i += 1
        elif c == "?":
            out += "[^/]"
            i += 1
        elif c == "[":
            j = pat.index("]", i)
            out += pat[i : j + 1]
            i = j + 1
        else:
            out += re.escape(c)
            i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules():
    rules = []
    with open(rel(".dockerignore"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pat = os.path.normpath(line[1:] if negate else line).lstrip("/")
            rules.append((negate, _pattern_regex(pat)))
    return rules


def in_context(path, rules):
    """Whether `path` (relative, '/'-separated) is sent to the builder: the last rule matching
    the path or one of its parent directories decides, as in Docker."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, rx in rules:
        if any(rx.match(c) for c in candidates):
            excluded = not negate
    return not excluded


def context_files():
    """The files a build from a clean checkout sends: the tracked ones, less .dockerignore's."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode().split("\0")
    rules = dockerignore_rules()
    return sorted(p for p in tracked if p and in_context(p, rules))


def check_dockerfile(path="Dockerfile", context="."):
    files = set(context_files()) if context == "." else None
    cmds = dockerfile.parse_file(rel(path))
    stages = set()
    n_copy = 0
    for c in cmds:
        if c.cmd == "FROM":
            image = c.value[0]
            if len(c.value) >= 3 and c.value[1].upper() == "AS":
                stages.add(c.value[2])
            if image not in stages and (":" not in image or image.endswith(":latest")):
                fail(f"{path}: FROM {image} is not pinned to a tag")
        if c.cmd in ("COPY", "ADD"):
            if any(f.startswith("--from=") for f in c.flags):
                continue
            srcs = [s for s in c.value[:-1]]
            for s in srcs:
                n_copy += 1
                s = s.rstrip("/")
                if files is None:
                    where = rel(os.path.dirname(path), s)
                    if not os.path.exists(where):
                        fail(f"{path}: COPY source {s} does not exist")
                    continue
                if s in files or any(f.startswith(s + "/") for f in files):
                    continue
                fail(f"{path}: COPY source {s} is not in the build context (missing or in .dockerignore)")
    ok(f"{path}: parsed by BuildKit's parser ({len(cmds)} instructions); {n_copy} COPY sources checked")
    # The files the build needs besides the COPY lines: what the crates include from outside
    # their own folders (gateway/build.rs reads web/ and docs/schema).
    for needed in ("web/package-lock.json", "web/build.mjs", "docs/schema/client.schema.json",
                   "storage/sample/places-sample.csv", "Cargo.lock"):
        if files is not None and needed not in files:
            fail(f"{path}: {needed} is not in the build context")
    for junk in ("web/node_modules", "target", "web/dist", ".git"):
        if files is not None and any(f == junk or f.startswith(junk + "/") for f in files):
            fail(f"{path}: {junk} is in the build context")


def export_context(dest):
    os.makedirs(dest, exist_ok=True)
    for p in context_files():
        d = os.path.join(dest, p)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copy2(rel(p), d)
    ok(f"build context exported to {dest}")


# --- compose -------------------------------------------------------------------------------------

PINNED = re.compile(r"^[a-z0-9./_-]+:[A-Za-z0-9._-]+$")


def check_compose():
    (doc,) = load_yaml_all("deploy/cluster/compose.yaml")
    services = doc["services"]
    base = "deploy/cluster"
    for name, svc in services.items():
        image = svc.get("image", "")
        if "build" in svc:
            # Built here; the tag names our own build (WAGU_IMAGE overrides it).
            b = svc["build"]
            df = os.path.normpath(os.path.join(base, b.get("context", "."), b.get("dockerfile", "Dockerfile")))
            if not os.path.exists(rel(df)):
                fail(f"compose: {name}: build file {df} missing")
        else:
            if not PINNED.match(image) or image.endswith(":latest"):
                fail(f"compose: {name}: image {image!r} is not pinned to a tag")
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith(".") or src.startswith("/"):
                path = os.path.normpath(os.path.join(base, src))
                if not os.path.exists(rel(path)):
                    fail(f"compose: {name}: mounted {src} ({path}) does not exist")
        deps = svc.get("depends_on", {})
        for dep in deps if isinstance(deps, (list, dict)) else []:
            if dep not in services:
                fail(f"compose: {name}: depends_on {dep}, which is no service")
    # The Redis runs the ops' file, the one the test bed runs.
    redis = services["redis"]
    if "../redis/wagu.conf:/usr/local/etc/redis/wagu.conf:ro" not in redis["volumes"] or \
            redis["command"][:2] != ["redis-server", "/usr/local/etc/redis/wagu.conf"]:
        fail("compose: redis does not run deploy/redis/wagu.conf")
    if services["nats"]["image"] != "nats:2.15.3-alpine":
        fail("compose: nats is not the test bed's 2.15.3")
    # The nodes: ids wagu-1..N, all on the one shared file, distinct media ports, drain time.
    nodes = {n: s for n, s in services.items() if re.fullmatch(r"wagu-\d+", n)}
    ids, udp = set(), set()
    for name, svc in nodes.items():
        env = svc["environment"]
        if env.get("WAGU_CLUSTER__NODE_ID") != name:
            fail(f"compose: {name}: WAGU_CLUSTER__NODE_ID is {env.get('WAGU_CLUSTER__NODE_ID')!r}")
        ids.add(env.get("WAGU_CLUSTER__NODE_ID"))
        if env.get("WAGU_CONFIG") != "/etc/wagu/wagu.toml" or \
                "./wagu.toml:/etc/wagu/wagu.toml:ro" not in svc["volumes"]:
            fail(f"compose: {name}: does not load deploy/cluster/wagu.toml")
        port = env["WAGU_MEDIA__UDP_LISTEN"].rsplit(":", 1)[1]
        if f"{port}:{port}/udp" not in svc.get("ports", []):
            fail(f"compose: {name}: media port {port} not published under the same number")
        udp.add(port)
        grace = int(str(svc["stop_grace_period"]).rstrip("s"))
        if grace <= drain_timeout():
            fail(f"compose: {name}: stop_grace_period {grace}s is not above drain_timeout_s")
        if svc["depends_on"]["migrate"]["condition"] != "service_completed_successfully":
            fail(f"compose: {name}: does not wait for the migration")
    if len(ids) != len(nodes) or len(udp) != len(nodes):
        fail("compose: node ids or media ports repeat")
    if [n for n, s in nodes.items() if "profiles" not in s] != ["wagu-1", "wagu-2", "wagu-3"]:
        fail("compose: the default profile must run exactly wagu-1..3")
    # HAProxy has a server for each node, under the node's name.
    with open(rel("deploy/cluster/haproxy.cfg"), encoding="utf-8") as f:
        servers = re.findall(r"^\s*server (\S+) \"\$\{WAGU_\d_ADDR-(\S+):8080\}\"", f.read(), re.M)
    if sorted(s for s, _ in servers) != sorted(nodes) or any(s != h for s, h in servers):
        fail(f"haproxy.cfg: servers {servers} do not match the compose nodes {sorted(nodes)}")
    ok(f"compose: {len(services)} services, images pinned, mounts present, nodes {sorted(nodes)}")


def drain_timeout():
    import tomllib

    with open(rel("deploy/cluster/wagu.toml"), "rb") as f:
        return tomllib.load(f)["cluster"]["drain_timeout_s"]


# --- kubernetes ----------------------------------------------------------------------------------


def k8s_docs():
    docs = {}
    for fn in sorted(os.listdir(rel("deploy/k8s"))):
        if fn.endswith(".yaml") and fn != "kustomization.yaml":
            for d in load_yaml_all(f"deploy/k8s/{fn}"):
                docs[(d["kind"], d["metadata"]["name"])] = d
    return docs


def check_k8s():
    docs = k8s_docs()
    with open(rel("deploy/cluster/wagu.toml"), encoding="utf-8") as f:
        if docs[("ConfigMap", "wagu-config")]["data"]["wagu.toml"] != f.read():
            fail("k8s: ConfigMap wagu-config's wagu.toml differs from deploy/cluster/wagu.toml")
    with open(rel("deploy/redis/wagu.conf"), encoding="utf-8") as f:
        if docs[("ConfigMap", "wagu-redis-config")]["data"]["wagu.conf"] != f.read():
            fail("k8s: ConfigMap wagu-redis-config's wagu.conf differs from deploy/redis/wagu.conf")
    dep = docs[("Deployment", "wagu")]
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    expect = {
        "replicas": spec["replicas"] == 3,
        "rollingUpdate maxUnavailable 1 maxSurge 1":
            spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 1},
        "readinessProbe on /readyz": c["readinessProbe"]["httpGet"]["path"] == "/readyz",
        "livenessProbe on /healthz": c["livenessProbe"]["httpGet"]["path"] == "/healthz",
        "preStop runs wagu drain": "wagu drain" in " ".join(c["lifecycle"]["preStop"]["exec"]["command"]),
        "grace period above drain_timeout_s": pod["terminationGracePeriodSeconds"] > drain_timeout(),
        "node id from the pod name": any(
            e["name"] == "WAGU_CLUSTER__NODE_ID"
            and e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
            for e in c["env"]),
        "config from the ConfigMap": pod["volumes"][0]["configMap"]["name"] == "wagu-config",
    }
    for what, good in expect.items():
        if not good:
            fail(f"k8s: Deployment: {what}")
    pdb = docs[("PodDisruptionBudget", "wagu")]["spec"]
    sel = dep["spec"]["selector"]["matchLabels"]
    if pdb["selector"]["matchLabels"] != sel or docs[("Service", "wagu")]["spec"]["selector"] != sel:
        fail("k8s: PDB or Service selects other pods than the Deployment")
    if pdb.get("maxUnavailable") != 1 and pdb.get("minAvailable") != 2:
        fail("k8s: PDB is neither maxUnavailable 1 nor minAvailable 2")
    (kust,) = load_yaml_all("deploy/k8s/kustomization.yaml")
    for r in kust["resources"]:
        if not os.path.exists(rel("deploy/k8s", r)):
            fail(f"k8s: kustomization lists {r}, which does not exist")
    for (kind, name), d in docs.items():
        for ctr in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            if not PINNED.match(ctr["image"]) or ctr["image"].endswith(":latest"):
                fail(f"k8s: {kind}/{name}: image {ctr['image']} not pinned")
    ok(f"k8s: {len(docs)} resources; ConfigMaps equal their sources; {len(expect)} Deployment rules")


# --- environments for the real config loader ------------------------------------------------------

COMPOSE_DEFAULTS = {
    # What an operator exports before `docker compose up` (compose.yaml's header).
    "WAGU_TOKEN_SECRET": "check-token-secret-0123456789abcdef0123",
    "WAGU_PUBLIC_IP": "192.0.2.10",
}


def interpolate(value):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, with COMPOSE_DEFAULTS as the
    operator's environment."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        got = os.environ.get(name, COMPOSE_DEFAULTS.get(name))
        if op == ":-" and not got:
            return arg
        if op == ":?" and not got:
            raise SystemExit(f"compose needs {name}: {arg}")
        return got or ""
    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", sub, str(value))


def env_of(which):
    if which == "compose" or which.startswith("compose:"):
        service = which.split(":", 1)[1] if ":" in which else "wagu-1"
        (doc,) = load_yaml_all("deploy/cluster/compose.yaml")
        env = {k: interpolate(v) for k, v in doc["services"][service]["environment"].items()}
    else:
        docs = k8s_docs()
        kind = ("Deployment", "wagu") if which == "k8s" else ("Job", "wagu-migrate")
        (c,) = docs[kind]["spec"]["template"]["spec"]["containers"]
        env = {}
        for e in c["env"]:
            if "value" in e:
                # $(VAR) refers to an earlier variable, as the kubelet expands it.
                env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), ""), e["value"])
            elif "fieldRef" in e["valueFrom"]:
                env[e["name"]] = {"metadata.name": "wagu-7c9d5b6f4-x2k4q",
                                  "status.hostIP": "192.0.2.21"}[e["valueFrom"]["fieldRef"]["fieldPath"]]
            else:
                key = e["valueFrom"]["secretKeyRef"]["key"]
                env[e["name"]] = {"token-secret": "check-token-secret-0123456789abcdef0123"}.get(key, f"check-{key}")
    # The file is mounted at /etc/wagu/wagu.toml there; check.sh passes its own path.
    env.pop("WAGU_CONFIG", None)
    return env


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "dockerfile":
        check_dockerfile("Dockerfile")
        check_dockerfile("deploy/cluster/s3s-fs.Dockerfile", context="deploy/cluster")
    elif what == "context":
        export_context(sys.argv[2])
    elif what == "compose":
        check_compose()
    elif what == "k8s":
        check_k8s()
    elif what == "env":
        for k, v in env_of(sys.argv[2]).items():
            print(f"{k}={v}")
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
