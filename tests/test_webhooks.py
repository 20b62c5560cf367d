import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from busque.jobs.backoff import backoff
from busque.jobs.webhooks import (
    DeliveryOutcome,
    WebhookTargetRefused,
    WebhookVerificationError,
    check_url,
    deliver,
    new_secret,
    payload_for,
    sign,
    signed_headers,
    validate_url,
    verify,
)

LOOPBACK = ["127.0.0.0/8"]

# --- signing -----------------------------------------------------------------


def test_new_secret_shape():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert new_secret() != secret


def test_known_answer():
    key = bytes(range(24))
    secret = "whsec_" + base64.b64encode(key).decode()
    msg_id, timestamp, body = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1674087231, b'{"a":1}'
    digest = hmac.new(key, b"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.1674087231." + body, hashlib.sha256)
    expected = "v1," + base64.b64encode(digest.digest()).decode()
    assert sign(secret, msg_id, timestamp, body) == expected


def test_sign_verify_round_trip():
    secret = new_secret()
    body = b'{"type":"job.status"}'
    headers = signed_headers(secret, "msg_1", body)
    assert headers["webhook-id"] == "msg_1"
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    verify(secret, headers, body)
    # Header names are case-insensitive.
    verify(secret, {k.title(): v for k, v in headers.items()}, body)


def test_verify_accepts_any_of_several_signatures():
    secret = new_secret()
    body = b"{}"
    headers = signed_headers(secret, "msg_1", body)
    headers["webhook-signature"] = "v1,bm90LWl0 v2,xyz " + headers["webhook-signature"]
    verify(secret, headers, body)


def test_verify_rejects_tampered_body():
    secret = new_secret()
    headers = signed_headers(secret, "msg_1", b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, b'{"a":2}')


def test_verify_rejects_wrong_secret():
    headers = signed_headers(new_secret(), "msg_1", b"{}")
    with pytest.raises(WebhookVerificationError):
        verify(new_secret(), headers, b"{}")


def test_verify_rejects_old_and_future_timestamps():
    secret = new_secret()
    old = signed_headers(secret, "msg_1", b"{}", timestamp=int(time.time()) - 301)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(secret, old, b"{}")
    future = signed_headers(secret, "msg_1", b"{}", timestamp=int(time.time()) + 301)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(secret, future, b"{}")
    verify(secret, old, b"{}", tolerance_s=3600)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_rejects_missing_headers(missing):
    secret = new_secret()
    headers = signed_headers(secret, "msg_1", b"{}")
    del headers[missing]
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(secret, headers, b"{}")


def test_verify_rejects_other_version_prefix():
    secret = new_secret()
    headers = signed_headers(secret, "msg_1", b"{}")
    headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v1a,")
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, b"{}")


# --- SSRF guard ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.1.2.3/hook", "private"),
        ("http://172.16.0.5/hook", "private"),
        ("https://192.168.1.1/hook", "private"),
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://0.0.0.0/hook", "an unspecified address"),
        ("http://[::]/hook", "unspecified"),
        ("http://[::ffff:127.0.0.1]/hook", "an IPv4-mapped loopback address"),
        ("http://[::ffff:10.0.0.1]/hook", "an IPv4-mapped private address"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://240.0.0.1/hook", "reserved"),
        ("http://100.64.0.1/hook", "a non-public address"),
        # IPv6 forms that reach a non-public IPv4 address, and the deprecated site-local range.
        ("http://[2002:7f00:1::]/hook", "a 6to4 loopback address"),
        ("http://[2002:a00:1::]/hook", "a 6to4 private address"),
        ("http://[fec0::1]/hook", "a site-local address"),
        ("http://[64:ff9b::7f00:1]/hook", "a NAT64 loopback address"),
        ("http://[64:ff9b::a9fe:a9fe]/hook", "a NAT64 link-local address"),
        ("http://[64:ff9b:1::1]/hook", "a NAT64 local-use address"),
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook", "a Teredo loopback address"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook", "a Teredo private address"),
    ],
)
def test_check_url_refuses_non_public_addresses(url, why):
    with pytest.raises(WebhookTargetRefused, match=why) as info:
        check_url(url, [])
    assert "allowed networks: []" in str(info.value)


def test_refusal_message_names_the_address():
    with pytest.raises(WebhookTargetRefused) as info:
        check_url("http://10.1.2.3/x", [])
    assert str(info.value) == "webhook host 10.1.2.3 is a private address; allowed networks: []"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://93.184.216.34/file", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("93.184.216.34/hook", "scheme"),
        ("http://user:pass@93.184.216.34/hook", "credentials"),
        ("http://user@93.184.216.34/hook", "credentials"),
        ("http:///hook", "no host"),
        ("http://93.184.216.34:0/hook", "port"),
        ("http://93.184.216.34:70000/hook", "port"),
        ("http://93.184.216.34:abc/hook", "port"),
    ],
)
def test_check_url_refuses_malformed_urls(url, why):
    with pytest.raises(WebhookTargetRefused, match=why):
        check_url(url, [])


def test_check_url_accepts_public_literal_ip():
    check_url("https://93.184.216.34/hook", [])
    check_url("http://[2002:5db8:d822::1]/hook", [])  # 6to4 of 93.184.216.34
    check_url("http://[64:ff9b::5db8:d822]/hook", [])  # NAT64 of it
    check_url("http://93.184.216.34:8080/hook?x=1", [])
    validate_url("https://93.184.216.34/hook", [])


def test_allow_networks_lets_loopback_through():
    check_url("http://127.0.0.1:8000/hook", LOOPBACK)
    check_url("http://[::ffff:127.0.0.1]/hook", LOOPBACK)
    check_url("http://10.1.2.3/hook", ["10.0.0.0/8"])
    with pytest.raises(WebhookTargetRefused, match=r"allowed networks: \['10.0.0.0/8'\]"):
        check_url("http://192.168.1.1/hook", ["10.0.0.0/8"])


def _fake_resolver(addresses):
    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    return getaddrinfo


def test_hostname_refused_if_any_address_is_private(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _fake_resolver(["93.184.216.34", "10.0.0.7"]))
    with pytest.raises(WebhookTargetRefused, match=r"example\.test \(10\.0\.0\.7\) is a private"):
        check_url("https://example.test/hook", [])


def test_hostname_with_only_public_addresses_is_accepted(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _fake_resolver(["93.184.216.34"]))
    check_url("https://example.test/hook", [])


def test_unresolvable_host_is_refused(monkeypatch):
    def getaddrinfo(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(WebhookTargetRefused, match="does not resolve"):
        check_url("https://no-such-host.invalid/hook", [])


# --- backoff and payload ------------------------------------------------------------


def test_backoff_bounds():
    for from_zero in (False, True):  # webhook deliveries, job retries
        for attempt in range(1, 12):
            for _ in range(50):
                delay = backoff(attempt, base=2.0, cap=60.0, from_zero=from_zero)
                assert 1.0 <= delay <= min(60.0, 2.0 * 2 ** (attempt - 1))
        assert backoff(0, 2.0, 60.0, from_zero=from_zero) == 0.0
        assert backoff(5000, 2.0, 60.0, from_zero=from_zero) <= 60.0
    # Below base / 2 the cap gives way for job retries only.
    assert backoff(1, base=10.0, cap=2.0) == 2.0
    assert backoff(1, base=10.0, cap=2.0, from_zero=True) == 5.0


def test_payload_for():
    event = {
        "id": "evt_1",
        "job_id": "job_1",
        "type": "job.status",
        "created_at": 1700000000.5,
        "data": {"status": "succeeded"},
    }
    assert payload_for(event) == {
        "type": "job.status",
        "timestamp": "2023-11-14T22:13:20.500000Z",
        "data": {"status": "succeeded", "job_id": "job_1", "event_id": "evt_1"},
    }


# --- delivery against a real local receiver ----------------------------------------


class Receiver:
    """A tiny HTTP server on 127.0.0.1 that verifies signatures and records requests."""

    def __init__(self, secret: str):
        self.secret = secret
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = dict(self.headers.items())
                try:
                    verify(receiver.secret, headers, body)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                receiver.requests.append(
                    {"path": self.path, "headers": headers, "body": body, "verified": verified}
                )
                if self.path == "/fail":
                    self._answer(500, b"boom " * 100)
                elif self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("location", "/ok")
                    self.send_header("content-length", "0")
                    self.end_headers()
                else:
                    self._answer(200 if verified else 401, b"thanks")

            def _answer(self, status, body):
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with Receiver(new_secret()) as r:
        yield r


def _deliver(url, secret, payload, allow_networks=LOOPBACK, timeout_s=5.0) -> DeliveryOutcome:
    async def run():
        async with httpx.AsyncClient() as client:
            return await deliver(client, url, secret, "msg_1", payload, allow_networks, timeout_s)

    return asyncio.run(run())


def test_deliver_sends_signed_request(receiver):
    payload = {"type": "job.status", "data": {"status": "running", "n": "é"}}
    outcome = _deliver(receiver.url + "/ok", receiver.secret, payload)
    assert outcome.ok, outcome
    assert outcome.status == 200
    assert outcome.error is None
    assert outcome.response_excerpt == "thanks"
    assert outcome.duration_ms >= 0
    [request] = receiver.requests
    assert request["verified"]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["webhook-id"] == "msg_1"
    assert headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")
    assert json.loads(request["body"]) == payload
    assert b" " not in request["body"]  # compact JSON


def test_deliver_with_wrong_secret_is_rejected_by_receiver(receiver):
    outcome = _deliver(receiver.url + "/ok", new_secret(), {"a": 1})
    assert not outcome.ok
    assert outcome.status == 401
    assert not receiver.requests[0]["verified"]


def test_deliver_server_error(receiver):
    outcome = _deliver(receiver.url + "/fail", receiver.secret, {"a": 1})
    assert outcome == DeliveryOutcome(
        ok=False,
        status=500,
        error="HTTP 500",
        duration_ms=outcome.duration_ms,
        response_excerpt=("boom " * 100)[:200],
    )


def test_deliver_does_not_follow_redirects(receiver):
    outcome = _deliver(receiver.url + "/redirect", receiver.secret, {"a": 1})
    assert not outcome.ok
    assert outcome.status == 302
    assert "redirect" in outcome.error
    assert [r["path"] for r in receiver.requests] == ["/redirect"]


def test_deliver_to_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcome = _deliver(f"http://127.0.0.1:{port}/hook", new_secret(), {"a": 1})
    assert not outcome.ok
    assert outcome.status is None
    assert outcome.error


def test_deliver_timeout():
    # A listening socket that never answers.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        outcome = _deliver(f"http://127.0.0.1:{port}/hook", new_secret(), {}, timeout_s=0.3)
    assert not outcome.ok
    assert outcome.status is None
    assert outcome.error.startswith("timeout")


def test_deliver_refuses_loopback_without_allow_networks(receiver):
    outcome = _deliver(receiver.url + "/ok", receiver.secret, {"a": 1}, allow_networks=[])
    assert not outcome.ok
    assert outcome.status is None
    assert outcome.error.startswith("refused: webhook host 127.0.0.1 is a loopback address")
    assert receiver.requests == []


def test_deliver_rechecks_dns_at_delivery_time(receiver, monkeypatch):
    # A host that passed validation earlier now resolves to a private address.
    monkeypatch.setattr(socket, "getaddrinfo", _fake_resolver(["10.0.0.7"]))
    outcome = _deliver("http://hooks.example.test/ok", receiver.secret, {}, allow_networks=[])
    assert not outcome.ok
    assert "refused" in outcome.error
    assert receiver.requests == []


def test_deliver_connects_to_the_address_it_checked(receiver, monkeypatch):
    """DNS rebinding: the resolver answers the checked (allowed) address first and another one
    after; the webhook still goes to the first, with the URL's host in its Host header."""
    answers = iter([["127.0.0.1"], ["127.0.0.3"]])  # nothing listens on 127.0.0.3

    def getaddrinfo(host, port, *args, **kwargs):
        literal = host.replace(".", "").isdigit()  # an address resolves to itself
        return _fake_resolver([host] if literal else next(answers))(host, port)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    port = receiver.url.rsplit(":", 1)[1]
    outcome = _deliver(
        f"http://rebind.example.test:{port}/ok", receiver.secret, {}, ["127.0.0.1/32"]
    )
    assert outcome.ok, outcome
    [request] = receiver.requests
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["host"] == f"rebind.example.test:{port}"


def test_a_pinned_https_request_still_names_its_host_for_tls():
    import ipaddress

    from busque.jobs.webhooks import pinned

    url, headers, extensions = pinned(
        "https://hooks.example.com:8443/in?x=1", ipaddress.ip_address("2606:2800::1")
    )
    assert url == "https://[2606:2800::1]:8443/in?x=1"
    assert headers == {"host": "hooks.example.com:8443"}
    assert extensions == {"sni_hostname": "hooks.example.com"}  # SNI and certificate check
    assert pinned("http://h.example.com", ipaddress.ip_address("93.184.216.34")) == (
        "http://93.184.216.34/",
        {"host": "h.example.com"},
        {},
    )


def test_a_trickling_receiver_cannot_stretch_an_attempt_past_its_timeout():
    """A receiver that sends a byte of its answer every 0.2 s never trips a read timeout;
    the attempt still ends at its total deadline."""
    stop = threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def trickle():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
            while not stop.wait(0.2):
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        port = server.getsockname()[1]
        started = time.monotonic()
        outcome = _deliver(f"http://127.0.0.1:{port}/hook", new_secret(), {}, timeout_s=1.0)
        took = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    assert not outcome.ok
    assert outcome.error.startswith("timeout after 1.0s"), outcome
    assert took < 2.0, took
