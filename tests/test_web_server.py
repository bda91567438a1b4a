"""The real server (``colorquant serve`` in its own process) under load: 30 requests at
once, two of them uploads that trickle in. Only 200, 503 and 408 come back, the health
check answers throughout, slow uploads are cut off without holding a processing slot, and
the server's peak memory stays under the bound README states."""

from __future__ import annotations

import http.client
import io
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

# README: "peak memory of the server under this load stays under 400 MiB".
DOCUMENTED_PEAK_MIB = 400
MIN_RATE_KB = 16  # the default of --min-upload-rate


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(*options: str):
    """``colorquant serve`` on a free port, answering its health check: (port, process)."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "colorquant", "serve", "--port", str(port), *options],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if _get(port, "/api/health")[0] == 200:
                return port, process
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail("colorquant serve did not start: " + process.stdout.read().decode(errors="replace"))


@pytest.fixture(scope="module")
def server():
    port, process = _start_server()
    yield port, process
    process.terminate()
    process.wait(10)


def _get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, float]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path, headers={"Host": host})
    status = connection.getresponse().status
    connection.close()
    return status, time.perf_counter() - started


def _multipart(data: bytes, fields: dict | None = None) -> tuple[bytes, str]:
    boundary = "colorquantboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in (fields or {}).items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="photo.png"\r\n'
                 "Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _post(port: int, body: bytes, content_type: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("POST", "/api/compress", body=body, headers={"Content-Type": content_type})
    status = connection.getresponse().status
    connection.close()
    return status


def _slow_post(port: int, body: bytes, content_type: str, bytes_per_second: int) -> tuple[int, float]:
    """Send the body at ``bytes_per_second`` until the server answers; the status and when."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as connection:
        connection.sendall((f"POST /api/compress HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                            f"Content-Length: {len(body)}\r\n\r\n").encode())
        connection.settimeout(0.25)
        sent, reply = 0, b""
        while b"\r\n" not in reply:
            if sent < len(body):
                step = bytes_per_second // 4
                try:
                    connection.sendall(body[sent:sent + step])
                except OSError:  # the server closed the connection after answering
                    sent = len(body)
                sent += step
            try:
                reply += connection.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not reply and sent >= len(body):
                break
    return int(reply.split()[1]) if reply.startswith(b"HTTP/") else 0, time.perf_counter() - started


def _peak_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_thirty_requests_with_two_slow_uploads(server, coffee):
    port, process = server
    buffer = io.BytesIO()
    Image.fromarray(coffee[::2, ::2].copy()).save(buffer, "PNG")
    photo = buffer.getvalue()
    body, content_type = _multipart(photo, {"colors": "32"})
    slow_body, _ = _multipart(photo * 2)  # about 400 KB, at 2 KB/s: far below the minimum rate

    health_times, stop = [], threading.Event()

    def watch_health():
        while not stop.is_set():
            health_times.append(_get(port, "/api/health"))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    with ThreadPoolExecutor(max_workers=30) as pool:
        slow = [pool.submit(_slow_post, port, slow_body, content_type, 2048) for _ in range(2)]
        time.sleep(1.0)  # the slow uploads are under way before the others arrive
        quick = [pool.submit(_post, port, body, content_type) for _ in range(28)]
        quick_statuses = [future.result() for future in quick]
        slow_results = [future.result() for future in slow]
    stop.set()
    watcher.join()

    assert set(quick_statuses) <= {200, 503}, quick_statuses
    assert quick_statuses.count(200) >= 2, quick_statuses  # the trickling uploads held no slot
    for status, seconds in slow_results:
        # cut off once the 10 s grace is over and the average falls under the minimum rate
        assert status == 408, slow_results
        assert 9 < seconds < 30, slow_results
    assert health_times and {status for status, _ in health_times} == {200}
    assert max(seconds for _, seconds in health_times) < 2.0, max(health_times)
    # the server still works, and its memory stayed bounded
    assert _post(port, body, content_type) == 200
    peak = _peak_mib(process.pid)  # Linux's /proc, as on CI
    print(f"server peak memory: {peak:.0f} MiB")
    assert peak < DOCUMENTED_PEAK_MIB
    assert os.path.exists(f"/proc/{process.pid}")


def test_server_refuses_unknown_host_names_by_default(server):
    port, _ = server
    assert _get(port, "/api/health", host="attacker.example")[0] == 400
    assert _get(port, "/api/health", host=f"localhost:{port}")[0] == 200


def test_connections_that_send_their_headers_slowly_are_closed():
    # slowloris: a header line every second, never the blank line that ends them
    port, process = _start_server("--header-timeout", "3")
    try:
        slow = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(5)]
        started = time.monotonic()
        for connection in slow:
            connection.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed_after = {}
        for second in range(12):
            time.sleep(1)
            for index, connection in enumerate(slow):
                if index in closed_after:
                    continue
                try:
                    connection.sendall(f"X-Slow-{second}: a\r\n".encode())
                except OSError:
                    closed_after[index] = time.monotonic() - started
        assert len(closed_after) == len(slow), closed_after
        assert max(closed_after.values()) < 6, closed_after  # 3 s, and the next send that notices
        assert _get(port, "/api/health")[0] == 200  # a prompt client is still served
        # a kept-alive connection gets the same deadline for its next request
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        kept.request("GET", "/api/health", headers={"Host": "127.0.0.1"})
        assert kept.getresponse().read() and True
        kept.sock.sendall(b"GET /api/health HTTP/1.1\r\n")
        time.sleep(4.5)
        with pytest.raises(OSError):
            for _ in range(3):
                kept.sock.sendall(b"X-Slow: a\r\n")
                time.sleep(0.3)
    finally:
        process.terminate()
        process.wait(10)


def test_a_port_in_use_is_one_line_before_any_serving_on(run_cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "colorquant", "serve", "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], lines
    assert "serving on" not in result.stderr


def test_an_empty_allowed_hosts_list_is_a_usage_error(run_cli):
    from .conftest import assert_one_line_error

    assert_one_line_error(run_cli("serve", "--allowed-hosts", ""), 2, "--allowed-hosts needs at least one")


def test_a_client_that_goes_away_mid_upload_leaves_no_traceback(coffee):
    port, process = _start_server()
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as gone:
                gone.sendall(b"POST /api/compress HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n"
                             b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
                             b"Content-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n"
                             + b"\0" * 5000)
                time.sleep(0.3)
        time.sleep(0.5)
        assert _get(port, "/api/health")[0] == 200
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode(errors="replace")
    assert "Traceback" not in output and "Exception in ASGI application" not in output, output
