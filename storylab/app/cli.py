"""``storylab app``: serve the web app on a local address (127.0.0.1 by default)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Optional

import typer

from storylab.cli_groups import app
from storylab.errors import StorylabError


def check_address(host: str, port: int) -> None:
    """One clear line for a port outside 1-65535 or a host that is neither an IP address nor a name."""
    if not 1 <= port <= 65535:
        raise StorylabError(f"--port must be between 1 and 65535, got {port}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not host or any(c.isspace() or c in "/:@" for c in host):
            raise StorylabError(f"--host must be an IP address or a host name, got '{host}'") from None


def port_is_free(host: str, port: int) -> bool:
    """Whether a TCP server could bind ``host:port`` now."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@app.command("app")
def app_command(host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (127.0.0.1: this machine only; "
                                         "0.0.0.0 exposes the app to the network)."),
                port: int = typer.Option(7860, "--port", help="TCP port."),
                out: Optional[Path] = typer.Option(None, "--out", help="Folder for the app's outputs (KITTI files, "
                                                   "timelines, clips); default: a fresh temporary folder."),
                warm: bool = typer.Option(True, "--warm/--no-warm", help="Load every tab's models in the background "
                                          "as soon as the page is up, so first clicks are fast."),
                ) -> None:
    """Start the web app: Guidance, ControlNet, Camera, Humor and Video QA tabs on the shipped checkpoints."""
    check_address(host, port)
    if not port_is_free(host, port):
        raise StorylabError(f"port {port} on {host} is in use; pass another --port")
    if out is not None and out.exists() and not out.is_dir():
        raise StorylabError(f"--out must be a folder, but {out} is a file")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise StorylabError("the web app needs gradio: pip install 'storylab[app]' (or pip install gradio)") from None
    from storylab.app.layout import serve

    print(f"storylab app: http://{host}:{port}  (Ctrl+C stops it)", flush=True)
    serve(host, port, out, block=True, warm=warm)
