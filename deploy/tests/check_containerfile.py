#!/usr/bin/env python3
"""Checks deploy/container/Containerfile without a container engine.

    check_containerfile.py REPO_ROOT PGMTLS_BINARY

- shape: two stages, the builder FROM debian:12, the runtime FROM debian:12-slim; the build is
  Release, clang, only the pgmtls target; USER is numeric and not 0; EXPOSE 6432 and 9187;
  ENTRYPOINT ["pgmtls"] and CMD ["run", "--config", "/etc/pgmtls/pgmtls.yaml"] in exec form;
- the builder installs only packages deploy/install-deps.sh also installs;
- everything the builder COPYs from the context is let through by the top-level .dockerignore;
- on Debian 12 (this machine's apt sources): every package either stage installs exists, and the
  runtime stage installs the package of every shared library `ldd PGMTLS_BINARY` lists.

Prints one line per check; exit status 1 when one fails. Checks that cannot run here (not Debian
12, no apt lists) print SKIP and do not fail.
"""

import fnmatch
import json
import os
import re
import subprocess
import sys

failures = 0


def ok(message):
    print(f"  ok    {message}")


def fail(message):
    global failures
    failures += 1
    print(f"  FAIL  {message}")


def skip(message):
    print(f"  SKIP  {message}")


def instructions(text):
    """(stage index, INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    out, stage, pending = [], -1, ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, args = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((stage, word, args.strip()))
    return out


def apt_packages(run_args):
    """Package names of every `apt-get install` in a RUN line."""
    names = []
    for command in re.split(r"&&|;", run_args):
        words = command.split()
        if "apt-get" in words and "install" in words:
            for w in words[words.index("install") + 1:]:
                if not w.startswith("-") and "=" not in w:
                    names.append(w)
    return names


def install_deps_packages(path):
    text = open(path, encoding="utf-8").read()
    body = re.search(r"^packages=\((.*?)^\)", text, re.S | re.M).group(1)
    names = []
    for line in body.splitlines():
        names += line.split("#", 1)[0].split()
    return set(names)


def dockerignore_allows(patterns, path):
    """Docker's rule: the last matching pattern wins; a directory's exclusion covers its files."""
    allowed = True
    parts = path.strip("/").split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        p = pattern[1:] if negate else pattern
        p = p.strip("/")
        for i in range(1, len(parts) + 1):
            if fnmatch.fnmatch("/".join(parts[:i]), p):
                allowed = negate
                break
    return allowed


def is_debian_12():
    try:
        text = open("/etc/os-release", encoding="utf-8").read()
    except OSError:
        return False
    return 'ID=debian' in text and 'VERSION_ID="12"' in text


def existing_packages(names):
    """The subset of `names` apt knows (one apt-cache call: it is slow to start)."""
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *names],
                       capture_output=True, text=True)
    return set(re.findall(r"^Package: (\S+)$", r.stdout, re.M))


def owning_packages(paths):
    """{library path: Debian package} in one dpkg -S call (each call reads every file list).
    Merged /usr means /lib/x and /usr/lib/x are one file, registered under either name."""
    candidates = {}
    for path in paths:
        forms = {path, os.path.realpath(path)}
        for f in list(forms):
            if f.startswith("/usr/lib/"):
                forms.add(f[len("/usr"):])
            elif f.startswith(("/lib/", "/lib64/")):
                forms.add("/usr" + f)
        for f in forms:
            candidates[f] = path
    r = subprocess.run(["dpkg", "-S", *sorted(candidates)], capture_output=True, text=True)
    owners = {}
    for line in r.stdout.splitlines():
        m = re.match(r"([^:,\s]+)(?::[a-z0-9]+)?: (/\S+)$", line)
        if m and m.group(2) in candidates:
            owners[candidates[m.group(2)]] = m.group(1)
    return owners


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root, binary = sys.argv[1], sys.argv[2]
    containerfile = os.path.join(root, "deploy/container/Containerfile")
    steps = instructions(open(containerfile, encoding="utf-8").read())
    froms = [a for _, w, a in steps if w == "FROM"]

    print("Containerfile: shape")
    if len(froms) == 2 and re.fullmatch(r"debian:12 AS builder", froms[0], re.I) and \
            froms[1] == "debian:12-slim":
        ok("builder FROM debian:12, runtime FROM debian:12-slim")
    else:
        fail(f"expected FROM debian:12 AS builder, then FROM debian:12-slim; found {froms}")
    build = " ".join(a for s, w, a in steps if s == 0 and w == "RUN")
    for needle in ("-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_CXX_COMPILER=clang++",
                   "--target pgmtls", "-G Ninja"):
        (ok if needle in build else fail)(f"builder runs cmake with {needle}")
    runtime = [(w, a) for s, w, a in steps if s == 1]
    user = [a for w, a in runtime if w == "USER"]
    if user and re.fullmatch(r"\d+(:\d+)?", user[-1]) and int(user[-1].split(":")[0]) != 0:
        ok(f"USER {user[-1]}: numeric, not root")
    else:
        fail(f"runtime USER must be a numeric non-root uid, found {user}")
    exposed = {p for w, a in runtime if w == "EXPOSE" for p in a.split()}
    (ok if {"6432", "9187"} <= exposed else fail)(f"EXPOSE {sorted(exposed)} has 6432 and 9187")
    for word, want in (("ENTRYPOINT", ["pgmtls"]),
                       ("CMD", ["run", "--config", "/etc/pgmtls/pgmtls.yaml"])):
        found = [a for w, a in runtime if w == word]
        try:
            value = json.loads(found[-1]) if found else None
        except json.JSONDecodeError:
            value = found[-1]
        (ok if value == want else fail)(f"{word} {value} (exec form, expected {want})")
    if any(w == "HEALTHCHECK" for w, _ in runtime):
        fail("HEALTHCHECK: orchestrators probe /healthz and /readyz themselves")

    print("Containerfile: build context")
    patterns = [l.strip() for l in open(os.path.join(root, ".dockerignore"), encoding="utf-8")
                if l.strip() and not l.lstrip().startswith("#")]
    for s, w, a in steps:
        if w != "COPY" or a.startswith("--from"):
            continue
        for src in a.split()[:-1]:
            exists = os.path.exists(os.path.join(root, src))
            allowed = dockerignore_allows(patterns, src)
            (ok if exists and allowed else fail)(
                f"COPY {src}: {'exists' if exists else 'MISSING'}, "
                f"{'in' if allowed else 'EXCLUDED from'} the build context")

    builder_pkgs = [p for s, w, a in steps if s == 0 and w == "RUN" for p in apt_packages(a)]
    runtime_pkgs = [p for s, w, a in steps if s == 1 and w == "RUN" for p in apt_packages(a)]
    print("Containerfile: packages")
    deps = install_deps_packages(os.path.join(root, "deploy/install-deps.sh"))
    extra = sorted(set(builder_pkgs) - deps)
    (ok if builder_pkgs and not extra else fail)(
        f"builder installs {len(builder_pkgs)} packages, all in deploy/install-deps.sh"
        + (f"; not there: {extra}" if extra else ""))

    if not is_debian_12():
        skip("not Debian 12: package names and ldd cannot be checked against the image's")
    elif subprocess.run(["apt-cache", "show", "libc6"], capture_output=True).returncode != 0:
        skip("no apt package lists here (apt-get update): package existence not checked")
    else:
        known = existing_packages(builder_pkgs + runtime_pkgs)
        missing = [p for p in builder_pkgs + runtime_pkgs if p not in known]
        (ok if not missing else fail)(
            f"all {len(builder_pkgs) + len(runtime_pkgs)} packages exist in Debian 12"
            + (f"; unknown: {missing}" if missing else ""))

        r = subprocess.run(["ldd", binary], capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"ldd {binary}: {r.stderr.strip() or r.stdout.strip()}")
        else:
            libs = []
            for line in r.stdout.splitlines():
                m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)", line)
                if m:
                    libs.append(m.group(1))
                elif "not found" in line:
                    fail(f"ldd: {line.strip()}")
            owners = owning_packages(libs)
            for lib in libs:
                pkg = owners.get(lib)
                if pkg is None:
                    fail(f"{lib}: no Debian package owns it (built against a local library?)")
                elif pkg in runtime_pkgs:
                    ok(f"{os.path.basename(lib)} <- {pkg}")
                else:
                    fail(f"{os.path.basename(lib)} <- {pkg}, which the runtime stage does not "
                         "install")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
