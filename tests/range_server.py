"""A local HTTP server with range requests, as an object store serves COGs to GDAL's /vsicurl/.

Run as its own process (``python tests/range_server.py FOLDER``; it prints its port): rasterio holds the GIL
while GDAL reads, so a server thread in the test's process would never answer.
"""

from __future__ import annotations

import functools
import io
import os
import re
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class RangeHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def send_head(self):
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        path = self.translate_path(self.path)
        if match is None or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        start, end = int(match.group(1)), min(int(match.group(2) or size - 1), size - 1)
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(data)  # the base class copies it to the client


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=sys.argv[1]))
    print(server.server_port, flush=True)
    server.serve_forever()
