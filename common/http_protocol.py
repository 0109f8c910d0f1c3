"""The HTTP/1.1 protocol every service is served with: uvicorn's httptools one, with two
changes at the wire, where the app cannot help.

- A request line with raw non-ASCII bytes (`GET /api/v1/search?q=中文` as curl sends what
  was typed) is refused by both of uvicorn's parsers (llhttp and h11 alike) before the app
  sees it. Those bytes are percent-encoded before parsing instead (what a browser would
  have sent), so the request simply works: `q` arrives as `中文`.
- A request the parser still refuses gets the one JSON error shape (400 `bad_request`)
  instead of uvicorn's plain text.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


def percent_encode_non_ascii(data: bytes) -> bytes:
    if data.isascii():
        return data
    return b"".join(b"%%%02X" % byte if byte >= 0x80 else bytes((byte,)) for byte in data)


class JiluHttpProtocol(HttpToolsProtocol):
    # Whether the bytes arriving next belong to a request line: at the start of a connection,
    # after a complete request, and while a request line has not yet ended. A request
    # pipelined behind another in the same read is parsed as sent (no client in use pipelines).
    _between_requests = True
    _in_request_line = True

    def data_received(self, data: bytes) -> None:
        line_open = False
        if self._in_request_line:
            end = data.find(b"\n")
            line_open = end < 0
            head, rest = (data, b"") if line_open else (data[:end], data[end:])
            data = percent_encode_non_ascii(head) + rest
        super().data_received(data)
        self._in_request_line = line_open or self._between_requests

    def on_message_begin(self) -> None:
        self._between_requests = False
        super().on_message_begin()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._between_requests = True

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": "bad_request", "detail": msg}).encode()
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
