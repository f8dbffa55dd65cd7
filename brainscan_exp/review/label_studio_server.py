"""A local Label Studio server for the review round trip: start it, get a token, stop it.

Why here and not in the adapter: the server is another program in another environment
(``.venv-labelstudio``: Label Studio pins numpy 2.2 and an older OpenCV, so it never enters the
project's ``.venv``); this module only launches it and talks to it over HTTP, as
:mod:`.label_studio` does.

Choices made, each for a reason found on Label Studio 1.23.2:

* the server binds 127.0.0.1 with ``--internal-host`` (``--host`` only names the URL it prints;
  the server still listened on 0.0.0.0);
* the port must be free before the start: Label Studio silently moves to the next free port,
  and a health check on the asked port would then talk to whatever else listens there;
* the first user comes from ``LABEL_STUDIO_USERNAME``/``PASSWORD``; a later start does not change
  an existing user's password, so the password is kept (mode 600) in the data folder;
* the version check against pypi.org, Sentry and usage analytics are switched off: the server
  sends nothing off this machine;
* a personal access token is created the way the web page does it (session login, CSRF, then
  ``POST /api/token/``); while one exists Label Studio answers 409, so the old ones are revoked
  (``/api/token/blacklist/`` accepts the truncated tokens that the token list shows) first.

CLI: ``python -m brainscan_exp.review.label_studio_server {start,token,stop}`` (``make label-studio``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
DEFAULT_VENV = ".venv-labelstudio"
DEFAULT_USER = "reviewer@brainscan.local"
DEFAULT_DATA_DIR = "cache/label_studio"
VENV_HELP = "create it with `make label-studio-venv` (python3 -m venv .venv-labelstudio && .venv-labelstudio/bin/pip install label-studio==1.23.2)"
PID_FILE, LOG_FILE, TOKEN_FILE, PASSWORD_FILE, URL_FILE = "server.pid", "server.log", "token", "password", "url"


class LabelStudioServerError(RuntimeError):
    """The server could not be started, reached or logged into; the message says what to do."""


def label_studio_executable(venv: str | os.PathLike = DEFAULT_VENV) -> Path:
    exe = Path(venv).resolve() / "bin" / "label-studio"  # absolute: the server runs in its data folder
    if not exe.exists():
        raise LabelStudioServerError(f"Label Studio is not installed: {exe} is missing; {VENV_HELP}")
    return exe


def server_env(
    data_dir: str | os.PathLike, document_root: str | os.PathLike, username: str, password: str
) -> dict[str, str]:
    """The environment of a server that starts without prompts and talks to nobody but localhost."""
    return {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(Path(data_dir).resolve()),
        "LABEL_STUDIO_USERNAME": username,
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(Path(document_root).resolve()),
        # nothing leaves the machine: no pypi.org version check, no Sentry, no usage analytics
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_SENTRY_DSN": "",
        "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
    }


def port_is_free(port: int, host: str = DEFAULT_HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex((host, port)) != 0


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port nobody listens on now (for tests: each server its own port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 600 from the start, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def password_for(data_dir: str | os.PathLike, password: str | None = None) -> str:
    """The first user's password: the one given, else the one kept in ``<data_dir>/password``, else a new one.

    Kept because Label Studio sets it only when it creates the user (the first start).
    """
    path = Path(data_dir) / PASSWORD_FILE
    if password:
        if not path.exists():
            _write_private(path, password)
        return password
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(18)
    _write_private(path, password)
    return password


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_healthy(
    url: str, process: subprocess.Popen | None = None, timeout: float = 300, log: Path | None = None
):
    """Poll ``/health`` until the server answers 200 (the first start spends ~1 min on migrations)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = _log_tail(log) if log else ""
            raise LabelStudioServerError(
                f"Label Studio exited with code {process.returncode} before {url}/health answered; its log ends:\n{tail}"
            )
        try:
            if requests.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    tail = _log_tail(log) if log else ""
    raise LabelStudioServerError(
        f"Label Studio did not answer {url}/health within {timeout:.0f} s; its log ends:\n{tail}"
    )


def start_server(
    data_dir: str | os.PathLike,
    document_root: str | os.PathLike,
    port: int = DEFAULT_PORT,
    venv: str | os.PathLike = DEFAULT_VENV,
    username: str = DEFAULT_USER,
    password: str | None = None,
    timeout: float = 300,
) -> subprocess.Popen:
    """Start Label Studio on 127.0.0.1:``port`` and return once it answers; stop it with :func:`stop_server`.

    Its sqlite database, media and log (``server.log``) live in ``data_dir``; it serves local files
    below ``document_root`` only. The process runs in its own session (its own process group), so a
    Ctrl-C in the shell that started it does not kill it, and stopping it stops all of it.
    """
    exe = label_studio_executable(venv)
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # its sqlite holds the readers' answers and password hashes: the owner's only
    if not Path(document_root).is_dir():
        raise LabelStudioServerError(f"the document root {document_root} is not a folder")
    if not port_is_free(port):
        raise LabelStudioServerError(
            f"port {port} on {DEFAULT_HOST} is taken (Label Studio would move to another port without saying): "
            "stop what listens there (`make label-studio-stop` if it is ours) or pick another port"
        )
    password = password_for(data_dir, password)
    log = data_dir / LOG_FILE
    cmd = [str(exe), "start", "--no-browser", "--port", str(port), "--internal-host", DEFAULT_HOST]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            cmd,
            env=server_env(data_dir, document_root, username, password),
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (data_dir / PID_FILE).write_text(str(process.pid))
    url = f"http://{DEFAULT_HOST}:{port}"
    (data_dir / URL_FILE).write_text(url)
    try:
        wait_until_healthy(url, process, timeout, log)
    except BaseException:
        stop_process(process)
        (data_dir / PID_FILE).unlink(missing_ok=True)
        raise
    return process


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the server is its session's leader: its group id is its pid
    except ProcessLookupError:
        pass


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a server started by :func:`start_server` (TERM, then KILL after ``timeout`` s)."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout)


def _is_label_studio(pid: int) -> bool:
    try:
        return b"label-studio" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop_server(data_dir: str | os.PathLike, timeout: float = 20) -> bool:
    """Stop the server whose pid ``data_dir/server.pid`` holds; False if none was running.

    Only that process (and its group) is signalled, and only if it is still a Label Studio
    process: a pid reused by another program since is left alone.
    """
    pid_file = Path(data_dir) / PID_FILE
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().strip())
    running = _is_label_studio(pid)
    if running:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _is_label_studio(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _is_label_studio(pid):
            _signal_group(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return running


def running_url(data_dir: str | os.PathLike) -> str | None:
    """The URL of the server ``data_dir`` belongs to, if it runs and answers."""
    data_dir = Path(data_dir)
    pid_file, url_file = data_dir / PID_FILE, data_dir / URL_FILE
    if not (pid_file.exists() and url_file.exists() and _is_label_studio(int(pid_file.read_text().strip()))):
        return None
    url = url_file.read_text().strip()
    try:
        return url if requests.get(f"{url}/health", timeout=5).status_code == 200 else None
    except requests.RequestException:
        return None


def login(url: str, email: str, password: str, timeout: float = 30) -> requests.Session:
    """A browser-like session: the login form's CSRF cookie, then the form posted (302 on success)."""
    session = requests.Session()
    session.get(f"{url}/user/login/", timeout=timeout).raise_for_status()
    csrf = session.cookies.get("csrftoken")
    response = session.post(
        f"{url}/user/login/",
        data={"email": email, "password": password, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{url}/user/login/"},
        allow_redirects=False,
        timeout=timeout,
    )
    if response.status_code != 302 or "/login" in response.headers.get("Location", "/login"):
        raise LabelStudioServerError(
            f"logging into {url} as {email} failed (answer {response.status_code}): wrong e-mail or password? "
            f"The password of `make label-studio`'s user is in {DEFAULT_DATA_DIR}/{PASSWORD_FILE}"
        )
    session.headers.update({"X-CSRFToken": session.cookies.get("csrftoken", csrf), "Referer": f"{url}/"})
    return session


def create_token(
    url: str, email: str, password: str, token_file: str | os.PathLike | None = None, timeout: float = 30
) -> str:
    """A new personal access token (refresh JWT) for ``email``, written to ``token_file`` (mode 600) if given.

    Label Studio keeps one live token per user and answers 409 to a second one: the user's live
    tokens are revoked first, so a token from an earlier call stops working.
    """
    url = url.rstrip("/")
    session = login(url, email, password, timeout)
    response = session.post(f"{url}/api/token/", timeout=timeout)
    if response.status_code == 409:
        for listed in session.get(f"{url}/api/token/", timeout=timeout).json():
            session.post(f"{url}/api/token/blacklist/", json={"refresh": listed["token"]}, timeout=timeout)
        response = session.post(f"{url}/api/token/", timeout=timeout)
    if response.status_code != 201:
        raise LabelStudioServerError(
            f"POST {url}/api/token/ answered {response.status_code}: {response.text[:300]!r}; are personal access "
            "tokens enabled for the organisation (Organization > API Token Settings)?"
        )
    token = response.json()["token"]
    if token_file is not None:
        _write_private(Path(token_file), token)
    return token


def token_works(url: str, token: str, timeout: float = 30) -> bool:
    try:
        response = requests.post(f"{url}/api/token/refresh/", json={"refresh": token}, timeout=timeout)
    except requests.RequestException:
        return False
    return response.status_code == 200


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brainscan_exp.review.label_studio_server", description=__doc__)
    parser.add_argument("command", choices=["start", "token", "stop"])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="the server's database, log, token")
    parser.add_argument("--document-root", default=None, help="Label Studio serves local files below it (start)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--venv", default=DEFAULT_VENV, help="Label Studio's own environment")
    parser.add_argument("--user", default=DEFAULT_USER, help="the first user's e-mail")
    parser.add_argument("--password", default=None, help=f"default: kept in <data-dir>/{PASSWORD_FILE}")
    parser.add_argument("--new", action="store_true", help="token: a new token even if the saved one works")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)

    if args.command == "stop":
        print("Label Studio stopped" if stop_server(data_dir) else f"no Label Studio server recorded in {data_dir}")
        return 0

    if args.command == "start":
        url = running_url(data_dir)
        if url:
            print(f"Label Studio already runs at {url}")
            return 0
        if args.document_root is None:
            parser.error("start needs --document-root (the folder above the datasets)")
        print(f"starting Label Studio on {DEFAULT_HOST}:{args.port} (the first start migrates its database: ~1 min)")
        process = start_server(data_dir, args.document_root, args.port, args.venv, args.user, args.password)
        print(f"Label Studio runs at http://{DEFAULT_HOST}:{args.port} (pid {process.pid}, log {data_dir / LOG_FILE})")
        return 0

    url = running_url(data_dir)
    if url is None:
        raise SystemExit(f"no Label Studio server of {data_dir} answers: start it first (`make label-studio`)")
    token_file = data_dir / TOKEN_FILE
    if not args.new and token_file.exists() and token_works(url, token_file.read_text().strip()):
        print(f"the token in {token_file} still works (--new for another one)")
    else:
        create_token(url, args.user, password_for(data_dir, args.password), token_file)
        print(f"new token written to {token_file} (mode 600)")
    print(f"URL: {url}\nuser: {args.user} (password in {data_dir / PASSWORD_FILE})\ntoken file: {token_file}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except (LabelStudioServerError, requests.RequestException) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
