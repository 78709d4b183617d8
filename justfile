# optscan tasks; run `just` for the list.

bin := justfile_directory() / ".venv/bin"

default:
    @"{{just_executable()}}" --justfile "{{justfile()}}" --list

# Serve the app: gunicorn with gevent workers on 127.0.0.1:8000
run:
    {{bin}}/gunicorn -c gunicorn.conf.py wsgi:app

# Serve with Flask's reloader, for development
dev:
    {{bin}}/flask --app optscan run --debug

# Install the Debian packages the browser and systemd tests need (root with apt-get only; when missing)
system-deps:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    command -v chromium >/dev/null || missing+=(chromium)
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    [ ${#missing[@]} -eq 0 ] && exit 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "system-deps: not root with apt-get; install the Debian packages ${missing[*]} yourself" \
             "(the browser and systemd tests fail without them)" >&2
        exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Run the whole test suite after the linters and the type checker (installs the Debian packages
# it needs first, see system-deps)
test *args: system-deps lint
    {{bin}}/python -m pytest -n 2 {{args}}

# Run the fast part of the suite: no servers, subprocesses or browser (about a minute)
test-fast *args:
    {{bin}}/python -m pytest -n 2 -m "not slow" {{args}}

# Scan from the command line, e.g. `just scan --force --symbols AAPL`
scan *args:
    {{bin}}/flask --app optscan scan {{args}}

# Run the benchmarks and print their tables (`just bench --smoke` for a quick check)
bench *args:
    {{bin}}/python -m bench {{args}}

# Lint, check formatting and check types (mypy; 0 errors is the rule)
lint:
    {{bin}}/ruff check .
    {{bin}}/ruff format --check .
    {{bin}}/mypy
