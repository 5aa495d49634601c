#!/usr/bin/env bash
# Lints deploy/ with what this machine has; needs neither a Docker engine nor a cluster.
#
#   1. YAML well-formedness of every .yml/.yaml under deploy/ that is not a Helm template
#      (multi-document files included), with python3 + PyYAML.
#   2. The chart sets every environment variable the binaries read (clap `env = "..."` in
#      control-plane/src/config.rs and data-plane/src/config.rs), and sets none they don't.
#   3. nginx -t on deploy/compose/nginx.conf, when nginx is installed (compose's service names
#      are swapped for 127.0.0.1, which nginx can resolve here).
#   4. helm lint + helm template (default values must fail, CI values and the existingSecret
#      and no-autoscaling variants must render to valid YAML), when helm is on PATH.
#   5. docker compose config -q, when `docker compose` works (it needs no engine); and the
#      compose-spec JSON schema, when check-jsonschema is on PATH.
#   6. hadolint on deploy/Dockerfile, when hadolint is on PATH.
#
# A missing tool is a "skip" line, never a failure; a lint finding exits 1.
# Run from anywhere: bash deploy/lint.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deploy="$root/deploy"
chart="$deploy/helm/gatehouse"
failures=0

ok()   { printf 'ok    %s\n' "$*"; }
skip() { printf 'skip  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*" >&2; failures=$((failures + 1)); }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# --- python3 with PyYAML ------------------------------------------------------------------------
if ! command -v python3 >/dev/null; then
    echo "deploy/lint.sh needs python3" >&2
    exit 2
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
    echo "PyYAML missing: pip install pyyaml"
    python3 -m pip install --quiet pyyaml
fi

# --- 1. YAML well-formedness --------------------------------------------------------------------
# Helm templates are Go templates, not YAML, until rendered: skip deploy/helm/*/templates/.
if python3 - "$deploy" <<'PY'
import pathlib, sys, yaml
deploy = pathlib.Path(sys.argv[1])
bad = 0
files = sorted(p for p in deploy.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()
               and "templates" not in p.relative_to(deploy).parts)
for path in files:
    try:
        with path.open() as f:
            docs = [d for d in yaml.safe_load_all(f)]
        print(f"ok    yaml {path.relative_to(deploy.parent)} ({len(docs)} document(s))")
    except yaml.YAMLError as e:
        print(f"FAIL  yaml {path.relative_to(deploy.parent)}: {e}", file=sys.stderr)
        bad += 1
if not files:
    print("FAIL  no YAML files found under deploy/", file=sys.stderr)
    bad += 1
sys.exit(1 if bad else 0)
PY
then :; else fail "YAML well-formedness"; fi

# --- 2. Environment variables: binaries vs chart ------------------------------------------------
if python3 - "$root" <<'PY'
import pathlib, re, sys, yaml
root = pathlib.Path(sys.argv[1])
chart = root / "deploy/helm/gatehouse"
values = yaml.safe_load((chart / "values.yaml").read_text())
# Read by the shared logging set-up (tracing's EnvFilter), not by clap.
extra_known = {"RUST_LOG"}
bad = 0
for plane, key in (("control-plane", "controlPlane"), ("data-plane", "dataPlane")):
    src = root / plane / "src/config.rs"
    if not src.exists():
        print(f"FAIL  env {src} not found: update deploy/lint.sh", file=sys.stderr)
        bad += 1
        continue
    read = set(re.findall(r'env\s*=\s*"([A-Z0-9_]+)"', src.read_text()))
    template = (chart / "templates" / f"{plane.replace('-', '')}-deployment.yaml").read_text()
    template += (chart / "templates/_helpers.tpl").read_text()
    in_values = set((values.get(key) or {}).get("env") or {})
    in_templates = set(re.findall(r"-\s*name:\s*([A-Z0-9_]+)", template))
    missing = sorted(read - in_values - in_templates)
    unknown = sorted(in_values - read - extra_known)
    if missing:
        print(f"FAIL  env {plane} reads {', '.join(missing)}, which the chart never sets "
              f"(add them to {key}.env in values.yaml)", file=sys.stderr)
        bad += 1
    if unknown:
        print(f"FAIL  env {key}.env sets {', '.join(unknown)}, which {plane} does not read",
              file=sys.stderr)
        bad += 1
    if not missing and not unknown:
        print(f"ok    env chart sets all {len(read)} variables {plane} reads")
sys.exit(1 if bad else 0)
PY
then :; else fail "environment variables in the chart"; fi

# --- 3. nginx -t --------------------------------------------------------------------------------
if command -v nginx >/dev/null; then
    sed -E 's/data-plane-[0-9]+:/127.0.0.1:/' "$deploy/compose/nginx.conf" >"$tmp/nginx.conf"
    if out="$(nginx -t -q -c "$tmp/nginx.conf" -g "pid $tmp/nginx.pid;" 2>&1)"; then
        ok "nginx -t deploy/compose/nginx.conf ($(nginx -v 2>&1 | sed 's/.*\///'))"
    else
        printf '%s\n' "$out" >&2
        fail "nginx -t deploy/compose/nginx.conf"
    fi
else
    skip "nginx -t: nginx not installed (apt-get install nginx)"
fi

# --- 4. helm ------------------------------------------------------------------------------------
if command -v helm >/dev/null; then
    ci_values="$chart/ci/lint-values.yaml"
    if helm lint --strict "$chart" -f "$ci_values" >"$tmp/helm-lint.txt" 2>&1; then
        ok "helm lint --strict (ci/lint-values.yaml)"
    else
        cat "$tmp/helm-lint.txt" >&2
        fail "helm lint"
    fi
    # Default values have no secrets: rendering must refuse, with a message.
    if helm template gatehouse "$chart" >/dev/null 2>"$tmp/helm-default.txt"; then
        fail "helm template with default values rendered; it should demand secrets.databaseUrl"
    elif grep -q 'secrets.databaseUrl' "$tmp/helm-default.txt"; then
        ok "helm template without secrets refuses: $(grep -o 'set secrets.databaseUrl[^"]*' "$tmp/helm-default.txt" | head -n1)"
    else
        cat "$tmp/helm-default.txt" >&2
        fail "helm template with default values failed for another reason"
    fi
    render() { # name, then helm arguments
        local name="$1"; shift
        if helm template gatehouse "$chart" "$@" >"$tmp/$name.yaml" 2>"$tmp/$name.err"; then
            if python3 - "$tmp/$name.yaml" "$name" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
print(f"ok    helm template ({sys.argv[2]}): {len(docs)} objects: {', '.join(kinds)}")
PY
            then :; else fail "helm template ($name) is not valid YAML"; fi
        else
            cat "$tmp/$name.err" >&2
            fail "helm template ($name)"
        fi
    }
    render ci -f "$ci_values"
    render existing-secret --set secrets.existingSecret=gatehouse-secrets
    render fixed-replicas -f "$ci_values" --set dataPlane.autoscaling.enabled=false \
        --set dataPlane.podDisruptionBudget.enabled=false --set migrations.enabled=false
else
    skip "helm lint / helm template: helm not on PATH"
fi

# --- 5. docker compose config -------------------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
    # Placeholder key: the file insists on one (${GATEHOUSE_ENCRYPTION_KEYS:?...}).
    if GATEHOUSE_ENCRYPTION_KEYS="k1:$(printf '0%.0s' {1..64})" \
        docker compose -f "$deploy/docker-compose.yml" config -q 2>"$tmp/compose.err"; then
        ok "docker compose config -q deploy/docker-compose.yml"
    else
        cat "$tmp/compose.err" >&2
        fail "docker compose config"
    fi
    # Without the key, compose must refuse with the message.
    if env -u GATEHOUSE_ENCRYPTION_KEYS docker compose -f "$deploy/docker-compose.yml" config -q \
        >/dev/null 2>&1; then
        fail "docker compose config accepted a missing GATEHOUSE_ENCRYPTION_KEYS"
    else
        ok "docker compose config refuses a missing GATEHOUSE_ENCRYPTION_KEYS"
    fi
else
    skip "docker compose config: the compose plugin is not installed ('docker compose version' fails)"
fi

# --- 5b. compose-spec schema (no interpolation), when check-jsonschema is on PATH -------------
# A second opinion on the compose file where the compose plugin is missing
# (pip install check-jsonschema: it ships the compose-spec schema).
if command -v check-jsonschema >/dev/null; then
    if check-jsonschema --builtin-schema vendor.compose-spec "$deploy/docker-compose.yml" \
        >"$tmp/schema.txt" 2>&1; then
        ok "check-jsonschema compose-spec deploy/docker-compose.yml"
    else
        cat "$tmp/schema.txt" >&2
        fail "check-jsonschema compose-spec deploy/docker-compose.yml"
    fi
else
    skip "compose-spec schema: check-jsonschema not on PATH"
fi

# --- 6. hadolint --------------------------------------------------------------------------------
if command -v hadolint >/dev/null; then
    if hadolint "$deploy/Dockerfile"; then
        ok "hadolint deploy/Dockerfile"
    else
        fail "hadolint deploy/Dockerfile"
    fi
else
    skip "hadolint: not on PATH"
fi

if ((failures > 0)); then
    printf '%d check(s) failed\n' "$failures" >&2
    exit 1
fi
echo "deploy lint passed"
