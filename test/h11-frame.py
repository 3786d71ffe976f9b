#!/usr/bin/env python3
# Frames HTTP/1.1 bytes with h11, the second strict parser (not JavaScript) of the proxy's differential tests.
#
# Reads one JSON object per line on stdin and writes one JSON object per line on stdout, in the same order:
#   in:  {"role": "server" | "client", "data": base64, "eof": bool, "requests": [{"method", "target"}]}
#        server: `data` is what a client sent (requests); client: `data` is what a server sent in answer to
#        `requests` (needed to frame HEAD responses), with `eof` when the connection was closed after it.
#   out: {"messages": [{"method"?, "target"?, "status"?, "version", "headers": [[name, value]], "body": base64,
#                       "complete": bool, "informational"?: bool, "trailers": [[name, value]]}],
#         "error": str | null, "trailing": int}
# `trailing` counts bytes h11 received but did not use (after an upgrade, or past the last message it could frame).
import base64
import json
import sys

import h11

MAX_HEAD = 16 * 1024


def text(b):
    return b.decode("latin1")


def headers_of(event):
    return [[text(k), text(v)] for k, v in event.headers]


def message(event, **extra):
    out = {"version": text(event.http_version), "headers": headers_of(event), "body": b"", "complete": False}
    out.update(extra)
    return out


def frame_server(data):
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    if data:  # receive_data(b"") means end of stream to h11
        conn.receive_data(data)
    messages, error, current = [], None, None
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as e:
            error = str(e) or type(e).__name__
            break
        if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            break
        if isinstance(event, h11.Request):
            current = message(event, method=text(event.method), target=text(event.target))
            messages.append(current)
        elif isinstance(event, h11.Data):
            current["body"] += event.data
        elif isinstance(event, h11.EndOfMessage):
            current["complete"] = True
            current["trailers"] = headers_of(event)
            # Answer, so that the next request on the connection (if any) is read too.
            conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
            else:
                break
    return messages, error, len(conn.trailing_data[0])


def frame_client(data, eof, requests):
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    if data:  # receive_data(b"") means end of stream to h11
        conn.receive_data(data)
    if eof:
        conn.receive_data(b"")
    messages, error = [], None
    for req in requests:
        conn.send(h11.Request(method=req["method"], target=req["target"], headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())
        done, current = False, None
        while not done:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as e:
                error = str(e) or type(e).__name__
                break
            if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                break
            if isinstance(event, h11.InformationalResponse):
                info = message(event, status=event.status_code, informational=True)
                info["complete"] = True
                messages.append(info)
            elif isinstance(event, h11.Response):
                current = message(event, status=event.status_code)
                messages.append(current)
            elif isinstance(event, h11.Data):
                current["body"] += event.data
            elif isinstance(event, h11.EndOfMessage):
                current["complete"] = True
                current["trailers"] = headers_of(event)
                done = True
        if not done or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            break
        conn.start_next_cycle()
    return messages, error, len(conn.trailing_data[0])


def main():
    for line in sys.stdin:
        job = json.loads(line)
        data = base64.b64decode(job["data"])
        if job["role"] == "server":
            messages, error, trailing = frame_server(data)
        else:
            messages, error, trailing = frame_client(data, job.get("eof", False), job.get("requests", []))
        for m in messages:
            m["body"] = base64.b64encode(m["body"]).decode()
            m.setdefault("trailers", [])
        sys.stdout.write(json.dumps({"messages": messages, "error": error, "trailing": trailing}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
