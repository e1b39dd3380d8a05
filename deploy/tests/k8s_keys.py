#!/usr/bin/env python3
"""Checks the YAML under deploy/ and the Kubernetes objects in it.

    k8s_keys.py DEPLOY_DIR

1. Every *.yaml / *.yml file under DEPLOY_DIR parses (all documents).
2. Every document with apiVersion and kind is checked against a hand-written allow-list of the
   fields of that kind (below): an unknown key anywhere in the object tree is an error naming its
   path, so a typo such as `readOnlyRootFileSystem` or a field at the wrong level fails here, with
   no cluster, instead of being silently pruned (custom resources, older API servers) or refused
   at apply time. Leaf values are type-checked and some are checked against their allowed values. Only the kinds deploy/ uses are
   known; any other kind is an error until it is added here. `metadata.namespace` is not allowed:
   the manifests leave the namespace to `kubectl -n`.
3. Cross-checks between the objects in deploy/kubernetes: selectors match the pod labels, named
   ports and volumes exist, the StatefulSet's governing Service is headless, PGMTLS_REPLICAS equals
   the replicas, the grace period covers preStop + shutdown_timeout + pgmtls's 6 s, every file
   the pgmtls configuration template names lies under one of the container's mounts, and every
   Secret mounted comes from cert-manager or examples/secrets.yaml with the keys the
   configuration reads.

Exit status 0 when everything holds, 1 otherwise; every problem is printed as FILE: PATH: message.
"""

import os
import re
import sys

import yaml

# ---- The allow-list. A schema is a dict (an object with exactly these keys), a one-element list
# (a list of that schema), or a leaf: one of the type names below, or a set of allowed strings.

STR, INT, BOOL, QUANTITY, INT_OR_STR, STR_MAP = "str", "int", "bool", "quantity", "int-or-str", "map"

META = {"name": STR, "labels": STR_MAP, "annotations": STR_MAP}

LABEL_SELECTOR = {
    "matchLabels": STR_MAP,
    "matchExpressions": [{"key": STR, "operator": {"In", "NotIn", "Exists", "DoesNotExist"},
                          "values": [STR]}],
}

HTTP_GET = {"path": STR, "port": INT_OR_STR, "scheme": {"HTTP", "HTTPS"}, "host": STR,
            "httpHeaders": [{"name": STR, "value": STR}]}
EXEC = {"command": [STR]}
PROBE = {
    "httpGet": HTTP_GET, "tcpSocket": {"port": INT_OR_STR}, "exec": EXEC,
    "initialDelaySeconds": INT, "periodSeconds": INT, "timeoutSeconds": INT,
    "failureThreshold": INT, "successThreshold": INT, "terminationGracePeriodSeconds": INT,
}
HANDLER = {"exec": EXEC, "httpGet": HTTP_GET, "sleep": {"seconds": INT}}

CAPABILITIES = {"add": [STR], "drop": [STR]}
SECCOMP = {"type": {"RuntimeDefault", "Localhost", "Unconfined"}, "localhostProfile": STR}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": BOOL, "readOnlyRootFilesystem": BOOL, "privileged": BOOL,
    "runAsNonRoot": BOOL, "runAsUser": INT, "runAsGroup": INT, "capabilities": CAPABILITIES,
    "seccompProfile": SECCOMP,
}
POD_SECURITY = {
    "runAsNonRoot": BOOL, "runAsUser": INT, "runAsGroup": INT, "fsGroup": INT,
    "fsGroupChangePolicy": {"OnRootMismatch", "Always"}, "supplementalGroups": [INT],
    "seccompProfile": SECCOMP,
}
RESOURCE_LIST = {"cpu": QUANTITY, "memory": QUANTITY, "ephemeral-storage": QUANTITY}
KEY_REF = {"name": STR, "key": STR, "optional": BOOL}
ENV_VAR = {
    "name": STR, "value": STR,
    "valueFrom": {"fieldRef": {"fieldPath": STR, "apiVersion": STR},
                  "secretKeyRef": KEY_REF, "configMapKeyRef": KEY_REF},
}
CONTAINER = {
    "name": STR, "image": STR, "imagePullPolicy": {"Always", "IfNotPresent", "Never"},
    "command": [STR], "args": [STR], "workingDir": STR, "env": [ENV_VAR],
    "ports": [{"name": STR, "containerPort": INT, "protocol": {"TCP", "UDP", "SCTP"}}],
    "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
    "lifecycle": {"preStop": HANDLER, "postStart": HANDLER},
    "resources": {"requests": RESOURCE_LIST, "limits": RESOURCE_LIST},
    "securityContext": CONTAINER_SECURITY,
    "volumeMounts": [{"name": STR, "mountPath": STR, "readOnly": BOOL, "subPath": STR}],
}
KEY_TO_PATH = [{"key": STR, "path": STR, "mode": INT}]
VOLUME = {
    "name": STR,
    "configMap": {"name": STR, "items": KEY_TO_PATH, "defaultMode": INT, "optional": BOOL},
    "secret": {"secretName": STR, "items": KEY_TO_PATH, "defaultMode": INT, "optional": BOOL},
    "emptyDir": {"medium": {"", "Memory"}, "sizeLimit": QUANTITY},
}
TOPOLOGY_SPREAD = {
    "maxSkew": INT, "topologyKey": STR, "whenUnsatisfiable": {"DoNotSchedule", "ScheduleAnyway"},
    "labelSelector": LABEL_SELECTOR, "minDomains": INT,
}
POD_SPEC = {
    "serviceAccountName": STR, "automountServiceAccountToken": BOOL, "enableServiceLinks": BOOL,
    "terminationGracePeriodSeconds": INT, "securityContext": POD_SECURITY,
    "topologySpreadConstraints": [TOPOLOGY_SPREAD], "nodeSelector": STR_MAP,
    "priorityClassName": STR, "initContainers": [CONTAINER], "containers": [CONTAINER],
    "volumes": [VOLUME],
}

ISSUER_REF = {"name": STR, "kind": {"Issuer", "ClusterIssuer"}, "group": STR}
CERT_USAGES = {
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
    "server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
    "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
}
ISSUER_SPEC = {"selfSigned": {"crlDistributionPoints": [STR]},
               "ca": {"secretName": STR, "crlDistributionPoints": [STR]}}

KINDS = {
    ("v1", "ConfigMap"): {"data": STR_MAP},
    ("v1", "Secret"): {"type": {"Opaque"}, "stringData": STR_MAP, "data": STR_MAP,
                       "immutable": BOOL},
    ("v1", "ServiceAccount"): {"automountServiceAccountToken": BOOL},
    ("v1", "Service"): {"spec": {
        "type": {"ClusterIP", "NodePort", "LoadBalancer"}, "clusterIP": STR,
        "publishNotReadyAddresses": BOOL, "selector": STR_MAP,
        "sessionAffinity": {"None", "ClientIP"}, "externalTrafficPolicy": {"Cluster", "Local"},
        "ports": [{"name": STR, "port": INT, "targetPort": INT_OR_STR,
                   "protocol": {"TCP", "UDP", "SCTP"}}],
    }},
    ("apps/v1", "StatefulSet"): {"spec": {
        "replicas": INT, "serviceName": STR, "podManagementPolicy": {"OrderedReady", "Parallel"},
        "updateStrategy": {"type": {"RollingUpdate", "OnDelete"},
                           "rollingUpdate": {"partition": INT}},
        "selector": LABEL_SELECTOR, "minReadySeconds": INT, "revisionHistoryLimit": INT,
        "template": {"metadata": {"labels": STR_MAP, "annotations": STR_MAP}, "spec": POD_SPEC},
    }},
    ("policy/v1", "PodDisruptionBudget"): {"spec": {
        "minAvailable": INT_OR_STR, "maxUnavailable": INT_OR_STR, "selector": LABEL_SELECTOR,
    }},
    ("networking.k8s.io/v1", "NetworkPolicy"): {"spec": {
        "podSelector": LABEL_SELECTOR, "policyTypes": [{"Ingress", "Egress"}],
        "ingress": [{
            "from": [{"podSelector": LABEL_SELECTOR, "namespaceSelector": LABEL_SELECTOR,
                      "ipBlock": {"cidr": STR, "except": [STR]}}],
            "ports": [{"port": INT_OR_STR, "endPort": INT, "protocol": {"TCP", "UDP", "SCTP"}}],
        }],
    }},
    ("cert-manager.io/v1", "Issuer"): {"spec": ISSUER_SPEC},
    ("cert-manager.io/v1", "ClusterIssuer"): {"spec": ISSUER_SPEC},
    ("cert-manager.io/v1", "Certificate"): {"spec": {
        "secretName": STR, "commonName": STR, "dnsNames": [STR], "ipAddresses": [STR],
        "uris": [STR], "emailAddresses": [STR], "duration": STR, "renewBefore": STR, "isCA": BOOL,
        "usages": [CERT_USAGES],
        "privateKey": {"algorithm": {"RSA", "ECDSA", "Ed25519"}, "size": INT,
                       "encoding": {"PKCS1", "PKCS8"}, "rotationPolicy": {"Never", "Always"}},
        "subject": {"organizations": [STR], "organizationalUnits": [STR], "countries": [STR]},
        "secretTemplate": {"labels": STR_MAP, "annotations": STR_MAP},
        "issuerRef": ISSUER_REF,
    }},
}

problems = []


def problem(where, path, message):
    problems.append(f"{where}: {path or '(top)'}: {message}")


def check(value, schema, where, path):
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            problem(where, path, f"expected a mapping, found {type(value).__name__}")
            return
        for key, sub in value.items():
            sub_path = f"{path}.{key}" if path else str(key)
            if key not in schema:
                problem(where, sub_path, "unknown key (not in the allow-list for this kind)")
            else:
                check(sub, schema[key], where, sub_path)
    elif isinstance(schema, list):
        if not isinstance(value, list):
            problem(where, path, f"expected a list, found {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check(item, schema[0], where, f"{path}[{i}]")
    elif isinstance(schema, set):
        if value not in schema:
            problem(where, path, f"{value!r} is not one of {sorted(schema)}")
    elif schema == STR:
        if not isinstance(value, str):
            problem(where, path, f"expected a string, found {value!r}")
    elif schema == INT:
        if isinstance(value, bool) or not isinstance(value, int):
            problem(where, path, f"expected an integer, found {value!r}")
    elif schema == BOOL:
        if not isinstance(value, bool):
            problem(where, path, f"expected true or false, found {value!r}")
    elif schema == INT_OR_STR:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            problem(where, path, f"expected an integer or a name, found {value!r}")
    elif schema == QUANTITY:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or \
                not re.fullmatch(r"[0-9.]+(m|k|Ki|Mi|Gi|Ti|M|G|T)?", str(value)):
            problem(where, path, f"not a resource quantity: {value!r}")
    elif schema == STR_MAP:
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            problem(where, path, "expected a mapping of strings to strings (quote numbers)")
    else:
        raise AssertionError(f"bad schema {schema!r}")


def check_object(obj, where):
    api, kind = obj.get("apiVersion"), obj.get("kind")
    body = KINDS.get((api, kind))
    if body is None:
        problem(where, "kind", f"{api} {kind} is not in the allow-list (deploy/tests/k8s_keys.py)")
        return
    schema = {"apiVersion": STR, "kind": STR, "metadata": META, **body}
    check(obj, schema, where, "")
    if not isinstance(obj.get("metadata"), dict) or not obj["metadata"].get("name"):
        problem(where, "metadata.name", "missing")


# ---- Cross-checks between the objects.

def duration_seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(text).strip())
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n / 1000 if unit == "ms" else n * {"s": 1, "m": 60, "h": 3600}[unit]


def strings_in(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from strings_in(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings_in(v)
    elif isinstance(node, str):
        yield node


def cross_check(objects):
    by_kind = {}
    for where, obj in objects:
        by_kind.setdefault(obj.get("kind"), []).append((where, obj))

    def get(kind, name):
        for where, obj in by_kind.get(kind, []):
            if obj.get("metadata", {}).get("name") == name:
                return where, obj
        return None, None

    for where, sts in by_kind.get("StatefulSet", []):
        spec = sts.get("spec", {})
        tmpl = spec.get("template", {})
        labels = tmpl.get("metadata", {}).get("labels", {})
        pod = tmpl.get("spec", {})

        def selects(selector):
            return all(labels.get(k) == v for k, v in (selector or {}).items())

        if not selector_ok(spec.get("selector", {}), labels):
            problem(where, "spec.selector", "does not match the pod template's labels")
        svc_where, svc = get("Service", spec.get("serviceName"))
        if svc is None:
            problem(where, "spec.serviceName", f"no Service {spec.get('serviceName')!r}")
        elif svc["spec"].get("clusterIP") != "None":
            problem(svc_where, "spec.clusterIP", "the governing Service must be headless (None)")

        volumes = {v.get("name"): v for v in pod.get("volumes", [])}
        containers = pod.get("containers", []) + pod.get("initContainers", [])
        port_names = {p.get("name") for c in pod.get("containers", []) for p in c.get("ports", [])}
        for c in containers:
            cpath = f"spec.template.spec.(init)containers[{c.get('name')}]"
            for m in c.get("volumeMounts", []):
                if m.get("name") not in volumes:
                    problem(where, f"{cpath}.volumeMounts", f"no volume {m.get('name')!r}")
                if "subPath" in m:
                    problem(where, f"{cpath}.volumeMounts", "subPath mounts are never updated")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in port_names:
                    problem(where, f"{cpath}.{probe}", f"no container port named {port!r}")
            replicas_env = [e.get("value") for e in c.get("env", [])
                            if e.get("name") == "PGMTLS_REPLICAS"]
            if replicas_env and replicas_env[0] != str(spec.get("replicas")):
                problem(where, f"{cpath}.env.PGMTLS_REPLICAS",
                        f"{replicas_env[0]} differs from spec.replicas {spec.get('replicas')}")

        # The only ConfigMap or Secret the manifests themselves provide; the others are created
        # by hand or by cert-manager (README.md).
        if not any(v.get("configMap", {}).get("name") == "pgmtls-config" for v in volumes.values()):
            problem(where, "spec.template.spec.volumes", "does not mount ConfigMap pgmtls-config")

        for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
            for owhere, obj in by_kind.get(kind, []):
                osp = obj.get("spec", {})
                if kind == "Service":
                    if not selects(osp.get("selector")):
                        problem(owhere, "spec.selector", "selects no pod of the StatefulSet")
                    for p in osp.get("ports", []):
                        t = p.get("targetPort")
                        if isinstance(t, str) and t not in port_names:
                            problem(owhere, "spec.ports", f"no container port named {t!r}")
                elif kind == "PodDisruptionBudget":
                    if not selector_ok(osp.get("selector", {}), labels):
                        problem(owhere, "spec.selector", "selects no pod of the StatefulSet")
                else:
                    if not selector_ok(osp.get("podSelector", {}), labels):
                        problem(owhere, "spec.podSelector", "selects no pod of the StatefulSet")

        # The stop: preStop sleep, then SIGTERM and the drain (shutdown_timeout), then up to 6 s
        # for the sessions pgmtls ended to close (kTerminateWait in proxy/server.cpp).
        main = next((c for c in pod.get("containers", []) if c.get("name") == "pgmtls"), None)
        if main is None:
            problem(where, "spec.template.spec.containers", "no container named pgmtls")
            continue
        sleep = 0
        cmd = main.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        if len(cmd) == 2 and cmd[0] in ("sleep", "/bin/sleep") and cmd[1].isdigit():
            sleep = int(cmd[1])
        cm_where, cm = get("ConfigMap", "pgmtls-config")
        if cm is None:
            continue
        try:
            config = yaml.safe_load(cm["data"]["pgmtls.yaml.in"])
        except (KeyError, yaml.YAMLError) as e:
            problem(cm_where, "data.pgmtls.yaml.in", f"does not parse: {e}")
            continue
        shutdown = duration_seconds(config.get("shutdown_timeout", "30s"))
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if shutdown is None or grace < sleep + shutdown + 6:
            problem(where, "spec.template.spec.terminationGracePeriodSeconds",
                    f"{grace} s does not cover preStop {sleep} s + shutdown_timeout "
                    f"{config.get('shutdown_timeout')} + 6 s")
        mounts = [m.get("mountPath").rstrip("/") + "/" for m in main.get("volumeMounts", [])]
        for s in strings_in(config):
            if s.startswith("/") and not any(s.startswith(m) for m in mounts):
                problem(cm_where, "data.pgmtls.yaml.in",
                        f"{s} is not under any volume mount of the pgmtls container")

        # Every Secret the pgmtls container mounts is a Certificate's (cert-manager makes it) or
        # one of examples/secrets.yaml's, and each file the configuration reads under a mounted
        # example Secret is one of its keys.
        made = {o.get("spec", {}).get("secretName") for _, o in by_kind.get("Certificate", [])}
        for m in main.get("volumeMounts", []):
            name = volumes.get(m.get("name"), {}).get("secret", {}).get("secretName")
            if name is None or name in made:
                continue
            s_where, secret = get("Secret", name)
            if secret is None:
                problem(where, f"spec.template.spec.volumes[{m.get('name')}]",
                        f"Secret {name!r} is neither a Certificate's nor in examples/secrets.yaml")
                continue
            keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
            prefix = m.get("mountPath").rstrip("/") + "/"
            for s in strings_in(config):
                if s.startswith(prefix) and s[len(prefix):] not in keys:
                    problem(s_where, "stringData",
                            f"no key {s[len(prefix):]!r}, which the configuration reads as {s}")


def selector_ok(selector, labels):
    match = selector.get("matchLabels", {})
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    deploy = sys.argv[1]
    objects = []
    files = 0
    for dirpath, dirnames, filenames in os.walk(deploy):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith((".yaml", ".yml")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, os.path.dirname(deploy.rstrip("/")))
            files += 1
            try:
                with open(path, encoding="utf-8") as f:
                    docs = list(yaml.safe_load_all(f))
            except yaml.YAMLError as e:
                problem(rel, "", f"does not parse: {e}")
                continue
            in_k8s = os.sep + "kubernetes" + os.sep in path
            for i, doc in enumerate(docs):
                if doc is None:
                    continue
                where = f"{rel}#{i}"
                if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                    check_object(doc, where)
                    if in_k8s:
                        objects.append((where, doc))
                elif in_k8s:
                    problem(where, "", "not a Kubernetes object (no apiVersion and kind)")
    cross_check(objects)
    kinds = sorted({o.get("kind") for _, o in objects})
    print(f"k8s_keys: {files} YAML files parsed; {len(objects)} Kubernetes objects checked "
          f"({', '.join(kinds)})")
    for p in problems:
        print(f"  {p}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
