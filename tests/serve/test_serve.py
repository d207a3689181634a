"""`vqa serve`: the JSON API, its refusals, concurrent requests, and the page in a real
headless browser."""

import base64
import fnmatch
import http.client
import io
import json
import shutil
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import ROOT, draw_shape
from http_client import _ask, _png, _request
from PIL import Image

from vqa.answering import Answerer
from vqa.cli import build_parser
from vqa.serve import MAX_UPLOAD, make_server


@pytest.fixture(scope="module")
def server(tiny_attention_run):
    answerer = Answerer.load(tiny_attention_run)
    httpd = make_server(answerer, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, answerer
    httpd.shutdown()
    httpd.server_close()


def test_the_page_is_served_and_shipped_in_the_package():
    from vqa.serve.app import _page

    page = _page().decode()
    for element in ('id="image"', 'id="question"', 'id="ask"', 'id="answer"', "/api/answer"):
        assert element in page
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["vqa"]
    shipped = [p.relative_to(ROOT / "vqa").as_posix() for p in (ROOT / "vqa" / "static").iterdir()]
    assert shipped and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in shipped), shipped


def test_get_the_page(server):
    status, page = _request(server[0], "GET", "/")
    assert status == 200 and "<form" in page and 'id="ask"' in page
    status, reply = _request(server[0], "GET", "/nothing-here")
    assert status == 404 and "/api/answer" in reply["error"]


def test_api_answers_with_probabilities_attention_and_overlay(server):
    httpd, answerer = server
    status, reply = _ask(httpd, _png(), "What color is the ZORBLAX?", top_k="4", overlay="1")
    assert status == 200, reply
    expected = answerer.answer(draw_shape("red", "circle"), "What color is the ZORBLAX?", 4)
    assert reply["answer"] == expected.answer and reply["question"] == expected.question
    assert [t["answer"] for t in reply["top_k"]] == [a for a, _ in expected.top_k]
    assert reply["probability"] == pytest.approx(expected.probability, rel=1e-5)
    assert reply["unknown_words"] == ["zorblax"]
    assert reply["warnings"] == expected.warnings
    assert reply["model"] == answerer.summary and reply["model"].startswith("trained on tiny")
    attention = np.array(reply["attention"])
    assert attention.shape == (8, 8) and attention.sum() == pytest.approx(1, abs=1e-3)
    hops = np.array(reply["hop_attention"])
    assert hops.shape == (2, 8, 8) and not np.allclose(hops[0], hops[1], atol=1e-4)
    np.testing.assert_allclose(hops.mean(axis=0), attention, atol=2e-5)
    prefix = "data:image/png;base64,"
    assert reply["overlay"].startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(reply["overlay"][len(prefix) :]))) as png:
        assert png.format == "PNG" and png.size == (1250, 400)  # each hop, the answers
    status, reply = _ask(httpd, _png(), "what shape?")
    assert status == 200 and "overlay" not in reply and len(reply["top_k"]) == 3


@pytest.mark.parametrize(
    "image, question, fields, status, match",
    [
        (b"just some text", "what?", {}, 415, "notes.txt: Cannot read image"),
        (b"", "what?", {}, 400, "No image"),
        (_png()[:200], "what?", {}, 415, "truncated"),
        (None, "   ", {}, 400, "question is empty"),
        (None, "what?", {"top_k": "0"}, 400, "top_k must be a whole number"),
        (None, "what?", {"top_k": "three"}, 400, "top_k must be a whole number"),
    ],
)
def test_api_refuses_bad_requests_with_a_message(server, image, question, fields, status, match):
    got, reply = _ask(
        server[0], _png() if image is None else image, question, file_name="notes.txt", **fields
    )
    assert got == status and match in reply["error"], reply


def test_api_refuses_uploads_over_10_mb(server):
    noise = np.random.default_rng(0).integers(0, 255, (1900, 1900, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG", compress_level=0)
    assert buffer.tell() > MAX_UPLOAD  # a real image, just too large
    status, reply = _ask(server[0], buffer.getvalue(), "what color is the shape?")
    assert status == 413 and "the limit is 10 MB" in reply["error"]


def test_api_refuses_what_is_not_a_form(server):
    status, reply = _request(
        server[0],
        "POST",
        "/api/answer",
        b'{"question": "what?"}',
        {"Content-Type": "application/json"},
    )
    assert status == 415 and "multipart/form-data" in reply["error"]
    connection = http.client.HTTPConnection(*server[0].server_address[:2], timeout=30)
    connection.putrequest("POST", "/api/answer")  # no Content-Length
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 411 and "Content-Length" in json.loads(response.read())["error"]
    connection.close()


def _send_raw(server, length: int, body: bytes = b"--x\r\n", stall: float = 0.0) -> bytes:
    """Headers saying `length`, `body`, then (after `stall` seconds) the end of sending."""
    import socket
    import time

    with socket.create_connection(server.server_address[:2], timeout=30) as sock:
        sock.sendall(
            b"POST /api/answer HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"multipart/form-data; boundary=x\r\n"
            + f"Content-Length: {length}\r\n\r\n".encode()
            + body
        )
        time.sleep(stall)
        if not stall:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def _status(reply: bytes) -> tuple[int, dict]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_an_upload_said_to_be_too_large_is_refused_before_it_is_read(server):
    status, reply = _status(_send_raw(server[0], 20_000_000))
    assert status == 413 and "the limit is 10 MB" in reply["error"]


def test_a_client_that_sends_less_than_it_said_and_leaves_costs_nothing(server):
    reply = _send_raw(server[0], 1000)  # the connection is closed, with or without a 400
    assert reply == b"" or _status(reply)[0] == 400
    status, reply = _ask(server[0], _png(), "what color is the shape?")
    assert status == 200  # and the next client is answered


@pytest.fixture(scope="module")
def impatient_server(tiny_attention_run):
    from vqa.serve import Batching

    httpd = make_server(
        Answerer.load(tiny_attention_run),
        port=0,
        batching=Batching(read_timeout_s=2.0, max_wait_ms=50),
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_a_slow_body_does_not_stall_the_others_and_times_out(impatient_server):
    import time

    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(_send_raw, impatient_server, 5000, b"--x\r\n", 4.0)
        time.sleep(0.3)  # the slow client is connected and stalling
        start = time.perf_counter()
        status, _ = _ask(impatient_server, _png(), "what color is the shape?")
        assert status == 200 and time.perf_counter() - start < 1.5
        status, reply = _status(slow.result())
    assert status == 408 and "did not arrive within 2 s" in reply["error"]


def test_concurrent_requests_are_answered_in_shared_model_calls(impatient_server):
    def health():
        return _request(impatient_server, "GET", "/healthz")[1]

    before = health()
    assert before["status"] == "ok" and before["queued"] == 0
    with ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(lambda i: _ask(impatient_server, _png(), "what shape?"), range(12)))
    assert all(status == 200 for status, _ in replies)
    after = health()
    assert after["answered"] - before["answered"] == 12
    assert after["batches"] - before["batches"] < 12  # some calls answered several


def test_a_full_queue_is_refused_at_once_with_503():
    import asyncio

    from vqa.errors import VQAError
    from vqa.serve.batching import Batcher, Batching, _Refused

    gate = threading.Event()

    class HeldModel:  # answers when the test lets it
        def answer_batch(self, images, questions, **kwargs):
            gate.wait(10)
            return [VQAError("held")] * len(images)

    async def scenario():
        batcher = Batcher(HeldModel(), Batching(max_batch=1, max_queue=1, max_wait_ms=0))
        runner = asyncio.create_task(batcher.run())
        await asyncio.sleep(0.05)
        first = asyncio.create_task(batcher.answer(b"x", "q", 1))  # in the model call
        await asyncio.sleep(0.05)
        second = asyncio.create_task(batcher.answer(b"x", "q", 1))  # waiting in the queue
        await asyncio.sleep(0.05)
        with pytest.raises(_Refused) as refused:
            await batcher.answer(b"x", "q", 1)
        gate.set()
        assert [str(r) for r in (await first, await second)] == ["held", "held"]
        runner.cancel()
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.status == 503 and "busy (1 requests waiting)" in refused.message


def test_the_openapi_docs_and_the_model_card_are_served(server):
    status, page = _request(server[0], "GET", "/docs")
    assert status == 200 and "swagger" in page.lower()
    status, spec = _request(server[0], "GET", "/openapi.json")
    assert status == 200 and "/api/answer" in spec["paths"] and "/healthz" in spec["paths"]
    status, card = _request(server[0], "GET", "/api/model")
    assert status == 200 and card["summary"].startswith("trained on tiny")
    assert card["answers"] == len(server[1].answers.tokens)
    status, reply = _request(server[0], "GET", "/nothing")
    assert status == 404 and "POST to /api/answer" in reply["error"]
    status, reply = _request(server[0], "GET", "/api/answer")  # every error one shape
    assert status == 405 and list(reply) == ["error"] and "GET is not allowed" in reply["error"]


def test_concurrent_requests_each_get_their_own_answer(server):
    httpd, answerer = server
    cases = [
        (c, s, q)
        for c in ("red", "blue")
        for s in ("circle", "rectangle")
        for q in ("what color is the shape?", "what shape is in the image?")
    ]
    with ThreadPoolExecutor(8) as pool:
        replies = list(
            pool.map(lambda case: _ask(httpd, _png(case[0], case[1]), case[2]), cases * 2)
        )
    for (color, shape, question), (status, reply) in zip(cases * 2, replies):
        assert status == 200, reply
        expected = answerer.answer(draw_shape(color, shape), question)
        assert reply["question"] == question
        assert [t["answer"] for t in reply["top_k"]] == [a for a, _ in expected.top_k]
        np.testing.assert_allclose(
            [t["probability"] for t in reply["top_k"]], [p for _, p in expected.top_k], rtol=1e-4
        )


def test_serve_listens_on_this_machine_only_by_default(server):
    args = build_parser().parse_args(["serve", "some/run"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)
    assert server[0].server_address[0] == "127.0.0.1"


def test_vqa_serve_command(tiny_attention_run):
    import re
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "vqa", "serve", str(tiny_attention_run), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()  # printed once it listens
        url = re.search(r"http://127\.0\.0\.1:(\d+)/", first)
        assert url, (first, proc.stderr.read() if proc.poll() is not None else "")
        connection = http.client.HTTPConnection("127.0.0.1", int(url[1]), timeout=30)
        connection.request("GET", "/")
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out


def _browser_paths() -> tuple[str | None, str | None]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    return chromium, shutil.which("chromedriver")


def test_the_page_in_headless_chromium(server, tmp_path):
    """Open the page, choose an image, type a question, ask, and read the answer."""
    chromium, driver = _browser_paths()
    if not (chromium and driver):
        pytest.skip(
            f"Chromium not found (chromium: {chromium}, chromedriver: {driver}); install it with "
            "apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    httpd, answerer = server
    draw_shape("blue", "rectangle").save(tmp_path / "shape.png")
    (tmp_path / "notes.txt").write_text("not an image")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        host, port = httpd.server_address[:2]
        browser.get(f"http://{host}:{port}/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: b.find_element(By.ID, "model").text)  # the model card
        assert browser.find_element(By.ID, "model").text == (
            "Trained on "
            + answerer.summary.removeprefix("trained on ")
            + f"; knows {len(answerer.answers.tokens)} answers."
        )
        browser.find_element(By.ID, "image").send_keys(str(tmp_path / "shape.png"))
        browser.find_element(By.ID, "question").send_keys("What shape is in the image?")
        browser.find_element(By.ID, "ask").click()
        wait.until(lambda b: b.find_element(By.ID, "answer").text)
        expected = answerer.answer(draw_shape("blue", "rectangle"), "What shape is in the image?")
        assert (
            browser.find_element(By.ID, "answer").text
            == f"{expected.answer} ({100 * expected.probability:.1f}%)"
        )
        items = browser.find_elements(By.CSS_SELECTOR, "#top li")
        assert [i.text.split("\n")[0] for i in items] == [a for a, _ in expected.top_k]
        # The attention over the image itself, beside the answers: two hops, three views.
        views = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#views button")]
        assert views == ["all hops", "hop 1", "hop 2"]
        painted = """const c = document.getElementById('overlay');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return [c.width, n];"""
        width, painted_pixels = browser.execute_script(painted)
        assert width == 48 and painted_pixels > 0
        image_box, answer_box = (browser.find_element(By.ID, i).rect for i in ("drop", "answer"))
        assert answer_box["x"] > image_box["x"] + image_box["width"] - 1  # side by side
        # A file that is not an image: the server's message is shown, no answer.
        browser.find_element(By.ID, "image").send_keys(str(tmp_path / "notes.txt"))
        browser.find_element(By.ID, "ask").click()
        wait.until(lambda b: b.find_element(By.ID, "error").text)
        assert "notes.txt: Cannot read image" in browser.find_element(By.ID, "error").text
        assert not browser.find_element(By.ID, "result").is_displayed()
        # On a phone's width: one column, nothing wider than the screen; an image dropped
        # on the page (a real drop event carrying a file) is asked about like a chosen one.
        browser.set_window_size(390, 844)
        browser.execute_script("""
            const c = document.createElement('canvas'); c.width = 40; c.height = 40;
            const g = c.getContext('2d');
            g.fillStyle = 'rgb(30,30,220)'; g.fillRect(10, 10, 20, 20);
            c.toBlob((blob) => {
                const data = new DataTransfer();
                data.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
                document.getElementById('drop').dispatchEvent(
                    new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
            });""")
        wait.until(
            lambda b: (
                b.execute_script("return document.getElementById('preview').naturalWidth") == 40
            )
        )
        browser.find_element(By.ID, "ask").click()
        wait.until(lambda b: b.find_element(By.ID, "result").is_displayed())
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
        image_box, answer_box = (browser.find_element(By.ID, i).rect for i in ("drop", "answer"))
        assert answer_box["y"] > image_box["y"] + image_box["height"] - 1  # one column
    finally:
        browser.quit()


def test_the_listening_socket_is_tcp_so_replies_go_out_without_delay():
    """asyncio turns Nagle's algorithm off (TCP_NODELAY) only on the connections of a
    socket made with proto IPPROTO_TCP; with proto 0 a kept-alive client waited 40 ms
    for each reply (the delayed ACK), 16 answers/s instead of 300."""
    import socket

    from vqa.serve.server import _listen

    sock = _listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP and sock.type == socket.SOCK_STREAM
    finally:
        sock.close()
