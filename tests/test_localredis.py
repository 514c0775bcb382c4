"""The embedded Redis keeps its data on disk (a restart of `make run` keeps queues and counters)."""

import socket
import subprocess

import redis

from pawa.ops import localredis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_embedded_redis_saves_its_data_and_reloads_it(tmp_path):
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    process = subprocess.Popen(localredis.server_command(port, tmp_path), stdout=subprocess.DEVNULL)
    try:
        localredis.wait_until_up(url)
        client = redis.Redis.from_url(url)
        assert client.config_get("save")["save"] == "60 1"
        client.set("pawa-kept", "ndiyo")
    finally:
        process.terminate()  # SIGTERM: Redis writes its snapshot on the way out
        process.wait(timeout=10)
    assert (tmp_path / "dump.rdb").exists()
    process = subprocess.Popen(localredis.server_command(port, tmp_path), stdout=subprocess.DEVNULL)
    try:
        localredis.wait_until_up(url)
        assert redis.Redis.from_url(url).get("pawa-kept") == b"ndiyo"
    finally:
        process.terminate()
        process.wait(timeout=10)
