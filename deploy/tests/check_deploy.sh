#!/usr/bin/env bash
# Checks the deployment files under deploy/ against pgmtls itself.
#
#   deploy/tests/check_deploy.sh PGMTLS_BINARY      (ctest runs it as the test deploy_files)
#
# (a) every YAML file under deploy/ parses, and every Kubernetes object in it names only fields of
#     its kind (deploy/tests/k8s_keys.py: strict allow-list, plus cross-checks between objects);
# (b) the Kubernetes ConfigMap's configuration, rendered by its own render-config.sh for every pod
#     ordinal, passes `pgmtls check` with a PKI made here by the openssl CLI, and `pgmtls map-test`
#     admits the example client certificate and refuses it as postgres;
# (c) systemd-analyze verify has nothing to say about deploy/systemd/pgmtls.service (pointed at
#     PGMTLS_BINARY), its exposure score stays at 2.0 or below, and TimeoutStopSec covers the drain;
# (d) deploy/container/Containerfile: shape, build context, and its packages against Debian 12 and
#     `ldd PGMTLS_BINARY` (deploy/tests/check_containerfile.py).
#
# Each check prints ok / FAIL / SKIP lines; the exit status is 1 if any failed.
set -uo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 PGMTLS_BINARY" >&2
  exit 2
fi
bin=$(realpath "$1")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failures=0
ok() { echo "  ok    $*"; }
fail() { echo "  FAIL  $*"; failures=$((failures + 1)); }
skip() { echo "  SKIP  $*"; }
indent() { sed 's/^/        | /'; }

# Debian's python3 (python3-yaml, see deploy/install-deps.sh) first: a pyenv or venv python3 on
# PATH may lack PyYAML.
py=""
for candidate in /usr/bin/python3 python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' 2>/dev/null; then
    py=$candidate
    break
  fi
done
if [ -z "$py" ]; then
  echo "check_deploy: python3 with PyYAML is required (apt-get install python3-yaml)" >&2
  exit 1
fi

echo "== (a) YAML under deploy/ and the Kubernetes objects' keys"
if out=$("$py" "$here/k8s_keys.py" "$root/deploy" 2>&1); then
  ok "$(echo "$out" | head -n 1)"
else
  fail "k8s_keys.py found problems:"
  echo "$out" | indent
fi

echo "== (b) the Kubernetes configuration through pgmtls check and map-test"
k8s=$root/deploy/kubernetes
work=$tmp/k8s
pki=$tmp/pki
mkdir -p "$work/template" "$work/run" "$work/etc/tls" "$work/etc/peer" "$work/etc/backend" \
         "$work/etc/backend-ca" "$pki"

# The ConfigMap's files, the StatefulSet's replicas and the server Certificate's DNS names.
if ! facts=$("$py" - "$k8s" "$work/template" <<'EOF'
import os, sys, yaml
k8s, out = sys.argv[1], sys.argv[2]
docs = []
for name in sorted(os.listdir(k8s)):
    if name.endswith(".yaml"):
        docs += [d for d in yaml.safe_load_all(open(os.path.join(k8s, name))) if d]
def find(kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
for key, text in find("ConfigMap", "pgmtls-config")["data"].items():
    with open(os.path.join(out, key), "w") as f:
        f.write(text)
print(find("StatefulSet", "pgmtls")["spec"]["replicas"])
print(",".join("DNS:" + n for n in find("Certificate", "pgmtls-server")["spec"]["dnsNames"]))
EOF
); then
  fail "cannot read the ConfigMap, StatefulSet or server Certificate from $k8s"
  facts=""
fi
replicas=$(echo "$facts" | sed -n 1p)
sans=$(echo "$facts" | sed -n 2p)

# A PKI like cert-manager.yaml's: one ECDSA CA issuing the server and the client certificate.
issue() {  # NAME SUBJECT EXTENSIONS
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "$2" \
    -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null &&
    printf '%b\n' "$3" >"$pki/$1.ext" &&
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
      -CAcreateserial -days 2 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
}
if [ -n "$facts" ] &&
   openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 \
     -subj "/CN=check_deploy test CA" -keyout "$pki/ca.key" -out "$pki/ca.crt" \
     -addext "basicConstraints=critical,CA:TRUE" \
     -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null &&
   issue server "/CN=pgmtls.pgmtls.svc" "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=$sans" &&
   issue client "/CN=app_user" "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth"; then
  ok "test PKI made with openssl (server SANs from cert-manager.yaml: $sans)"
  # Where the StatefulSet mounts each Secret and ConfigMap (/etc/pgmtls/...), under $work/etc.
  cp "$pki/server.crt" "$work/etc/tls/tls.crt"
  cp "$pki/server.key" "$work/etc/tls/tls.key"
  cp "$pki/ca.crt" "$work/etc/tls/ca.crt"
  cp "$pki/ca.crt" "$work/etc/backend-ca/ca.crt"
  openssl rand -hex 32 >"$work/etc/peer/secret"
  echo "not-a-real-password" >"$work/etc/backend/password"
  chmod 0440 "$work/etc/tls/tls.key" "$work/etc/peer/secret" "$work/etc/backend/password"
else
  fail "could not make the test PKI with openssl"
  replicas=""
fi

# Renders the configuration of pod pgmtls-$1 as the init container would (under dash, the
# image's sh, when it is installed), then points its absolute paths at the files made above.
shell=$(command -v dash || command -v sh)
render() {
  POD_NAME="pgmtls-$1" PGMTLS_REPLICAS="$replicas" PGMTLS_PEER_SERVICE=pgmtls-peers \
    PGMTLS_TEMPLATE="$work/template/pgmtls.yaml.in" PGMTLS_CONFIG="$work/run/pgmtls-$1.yaml" \
    "$shell" "$work/template/render-config.sh" &&
    sed -i -e "s#/etc/pgmtls-template/#$work/template/#g" -e "s#/etc/pgmtls/#$work/etc/#g" \
      "$work/run/pgmtls-$1.yaml"
}
# The rendered file's instance_id and peers, as YAML sees them.
expect_identity() {  # ORDINAL
  "$py" - "$work/run/pgmtls-$1.yaml" "$1" "$replicas" <<'EOF'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
me, n = int(sys.argv[2]), int(sys.argv[3])
cancel = cfg["cancel"]
want = [{"id": i, "address": f"pgmtls-{i}.pgmtls-peers:6432"} for i in range(n) if i != me]
if cancel["instance_id"] != me or cancel["peers"] != want:
    sys.exit(f"instance_id {cancel['instance_id']}, peers {cancel['peers']}; expected {me}, {want}")
EOF
}

for ((i = 0; i < ${replicas:-0}; i++)); do
  cfg=$work/run/pgmtls-$i.yaml
  if ! out=$(render "$i" 2>&1); then
    fail "render-config.sh for pgmtls-$i:"
    echo "$out" | indent
    continue
  fi
  if out=$(expect_identity "$i" 2>&1); then
    ok "pgmtls-$i rendered: instance_id $i, the other $((replicas - 1)) pods as peers"
  else
    fail "pgmtls-$i rendered wrongly: $out"
  fi
  if out=$("$bin" check --config "$cfg" 2>&1); then
    ok "pgmtls check accepts pgmtls-$i's configuration"
    continue
  fi
  fail "pgmtls check refuses pgmtls-$i's configuration:"
  echo "$out" | indent
done

# examples/secrets.yaml's placeholders fail safe: with its peer secret, pgmtls check refuses.
if [ -n "$replicas" ] && [ -f "$work/run/pgmtls-0.yaml" ]; then
  placeholder=$("$py" -c 'import sys, yaml
docs = yaml.safe_load_all(open(sys.argv[1]))
print(next(d for d in docs if d["metadata"]["name"] == "pgmtls-peer")["stringData"]["secret"])' \
    "$k8s/examples/secrets.yaml")
  mkdir -p "$work/placeholder"
  printf '%s\n' "$placeholder" >"$work/placeholder/secret"
  sed "s#$work/etc/peer/#$work/placeholder/#" "$work/run/pgmtls-0.yaml" >"$work/placeholder.yaml"
  if out=$("$bin" check --config "$work/placeholder.yaml" 2>&1); then
    fail "pgmtls check accepts examples/secrets.yaml's placeholder peer secret"
  elif echo "$out" | grep -q "peer_secret_file.*at least 32 bytes"; then
    ok "pgmtls check refuses examples/secrets.yaml's placeholder peer secret"
  else
    fail "pgmtls check refuses the placeholder peer secret, but not for its length:"
    echo "$out" | indent
  fi
fi

if [ -n "$replicas" ]; then
  if out=$(render "$replicas" 2>&1); then
    fail "render-config.sh accepted pgmtls-$replicas with PGMTLS_REPLICAS=$replicas"
  else
    ok "render-config.sh refuses pgmtls-$replicas beyond PGMTLS_REPLICAS=$replicas: $out"
  fi
  # The access rules in the ConfigMap, on the example client certificate (CN=app_user).
  cfg=$work/run/pgmtls-0.yaml
  if "$bin" check --config "$cfg" >/dev/null 2>&1; then
    # map_test ROLE EXPECTED_STATUS DESCRIPTION: map-test of the example client as ROLE.
    map_test() {
      "$bin" map-test --config "$cfg" --cert "$pki/client.crt" --user "$1" --database app \
        >"$tmp/map-test.out" 2>&1
      local rc=$?
      if [ $rc -eq "$2" ]; then
        ok "map-test: $3"
      else
        fail "map-test: CN=app_user as $1 exited $rc, expected $2 ($3)"
        indent <"$tmp/map-test.out"
      fi
    }
    map_test app_user 0 "CN=app_user may connect as app_user"
    map_test postgres 1 "CN=app_user may not connect as postgres (reject rule)"
  else
    skip "map-test: no configuration that pgmtls check accepts"
  fi
fi

echo "== (c) deploy/systemd/pgmtls.service"
if command -v systemd-analyze >/dev/null 2>&1; then
  mkdir -p "$tmp/systemd"
  unit=$tmp/systemd/pgmtls.service
  # verify wants ExecStart's binary to exist: point the unit at the one under test.
  sed "s#/usr/local/bin/pgmtls#$bin#g" "$root/deploy/systemd/pgmtls.service" >"$unit"
  # verify exits 0 even for unknown keys (it only warns), so any output is a failure.
  out=$(systemd-analyze verify "$unit" 2>&1)
  rc=$?
  if [ $rc -eq 0 ] && [ -z "$out" ]; then
    ok "systemd-analyze verify: no complaints"
  else
    fail "systemd-analyze verify (exit $rc):"
    echo "$out" | indent
  fi
  version=$(systemd-analyze --version | sed -n 's/^systemd \([0-9]*\).*/\1/p')
  if [ "${version:-0}" -ge 250 ]; then
    out=$(systemd-analyze security --offline=yes --threshold=20 "$unit" 2>&1)
    rc=$?
    score=$(echo "$out" | grep -o 'Overall exposure level for [^:]*: [0-9.]*' | grep -o '[0-9.]*$')
    if [ $rc -eq 0 ]; then
      ok "systemd-analyze security: exposure ${score:-?} (at most 2.0)"
    else
      fail "systemd-analyze security: exposure ${score:-?}, more than 2.0 (exit $rc)"
      echo "$out" | grep -v '✓' | indent
    fi
  else
    skip "systemd-analyze security --offline needs systemd 250 or later (have ${version:-?})"
  fi
else
  skip "systemd-analyze is not installed: unit not verified"
fi
# SIGTERM: shutdown_timeout (30s unless the configuration says otherwise) + 6 s for ended sessions.
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\?$/\1/p' "$root/deploy/systemd/pgmtls.service")
if [ -n "$stop" ] && [ "$stop" -ge 36 ]; then
  ok "TimeoutStopSec=${stop}s covers the default shutdown_timeout (30s) + 6 s"
else
  fail "TimeoutStopSec (${stop:-unset}) must be at least 36s: shutdown_timeout 30s + 6 s"
fi

echo "== (d) deploy/container/Containerfile"
if out=$("$py" "$here/check_containerfile.py" "$root" "$bin" 2>&1); then
  echo "$out" | grep -E '^  (SKIP|FAIL)' || true
  ok "$(echo "$out" | grep -c '^  ok') checks passed (check_containerfile.py)"
else
  echo "$out" | grep -v '^  ok' | indent
  fail "check_containerfile.py"
fi
echo "   (no container engine is used: the image itself is not built here)"

if [ "$failures" -gt 0 ]; then
  echo "check_deploy: $failures check(s) FAILED"
  exit 1
fi
echo "check_deploy: all checks passed"
