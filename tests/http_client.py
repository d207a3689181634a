"""An HTTP client for the server's tests: a PNG of a drawn shape, a multipart form, one
request, and one question asked of /api/answer."""

import http.client
import io
import json
import uuid

from conftest import draw_shape


def _png(color="red", shape="circle", size=48) -> bytes:
    buffer = io.BytesIO()
    draw_shape(color, shape, size).save(buffer, "PNG")
    return buffer.getvalue()


def _multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (file_name, data) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{file_name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    return b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _request(httpd, method, path, body=None, headers=None) -> tuple[int, dict | str]:
    connection = http.client.HTTPConnection(*httpd.server_address[:2], timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(data) if kind == "application/json" else data.decode()


def _ask(httpd, image: bytes, question: str, file_name="x.png", **fields):
    body, content_type = _multipart({"question": question, **fields}, {"image": (file_name, image)})
    return _request(httpd, "POST", "/api/answer", body, {"Content-Type": content_type})
