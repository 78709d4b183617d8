# optscan tasks; run `just` for the list.

bin := justfile_directory() / ".venv/bin"

default:
    @just --list

# Serve the app: gunicorn with gevent workers on 127.0.0.1:8000
run:
    {{bin}}/gunicorn -c gunicorn.conf.py wsgi:app

# Serve with Flask's reloader, for development
dev:
    {{bin}}/flask --app optscan run --debug

# Run the test suite
test *args:
    {{bin}}/python -m pytest {{args}}

# Scan from the command line, e.g. `just scan --force --symbols AAPL`
scan *args:
    {{bin}}/flask --app optscan scan {{args}}

# Run the benchmarks and print their tables (`just bench --smoke` for a quick check)
bench *args:
    {{bin}}/python -m bench {{args}}

# Lint and check formatting
lint:
    {{bin}}/ruff check .
    {{bin}}/ruff format --check .
