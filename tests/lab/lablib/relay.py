"""A WAN in front of a lab host's sshd: a TCP relay that delays each direction by half the
round-trip time and caps each direction's unacknowledged bytes like a TCP window.

This kernel has no `tc netem`, so `lab up --rtt 40ms NAME` starts one relay per host, on
the port the lab's ssh_config names; sshd listens on a port behind it.  Everything that
reaches the host therefore crosses the relay: the cockpit, and the other lab hosts (sync
and db copies between hosts resolve the same port).

The model, per connection and direction:
- a byte read at time t is written to the far side at t + rtt/2, in order;
- it counts as unacknowledged until t + rtt (the ack's way back), and the relay stops
  reading while `window` bytes are unacknowledged, so one connection moves at most
  window / rtt, as TCP does with that window;
- the handshake's round trip: the client's connect() returns at once (the kernel
  accepts), so the relay makes up for it: the far side is connected 1.5 rtt after the
  accept, and what the client sends in its first rtt leaves as if sent at its end.
  Measured from the client's connect(), the first answer comes after 2 rtt, as on a WAN;
  only the connect() itself is quick.

Run as a process: relay.py --to PORT --conf FILE --ready FILE.  It listens on a free
port of 127.0.0.1 and writes that port to the ready file.  FILE holds {"rtt_ms": N,
"window": BYTES}; SIGHUP re-reads it for the connections that come after
(`lab rtt NAME 0ms`)."""

import argparse
import asyncio
import collections
import json
import os
import re
import signal
import sys

DEFAULT_WINDOW = 4 << 20  # Linux's largest default send buffer (net.ipv4.tcp_wmem), 4 MiB
_RTT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")


def parse_rtt(text: str) -> float:
    """Return an RTT such as "40ms", "0.04s" or "40" (milliseconds) in milliseconds."""
    m = _RTT_RE.match(str(text))
    if not m:
        raise ValueError(f"bad RTT '{text}': give milliseconds such as 40ms, or seconds such as 0.04s")
    value = float(m.group(1)) * (1000.0 if m.group(2) == "s" else 1.0)
    if value > 10_000:
        raise ValueError(f"bad RTT '{text}': at most 10 s")
    return value


class Direction:
    """One direction of a relayed connection: what src sent, on its way to dst."""

    def __init__(self, loop, half: float, window: int, name: str, not_before: float = 0.0):
        self.loop, self.half, self.window, self.name = loop, half, window, name
        self.not_before = not_before  # nothing leaves before this (the handshake)
        self.src = None          # the transport read from
        self.dst = None          # the transport written to (None until connected)
        self.queue = collections.deque()   # (due, bytes or None for EOF)
        self.acks = collections.deque()    # (due, nbytes)
        self.unacked = 0
        self.dst_blocked = False
        self.reading = True
        self.flush_timer = None
        self.ack_timer = None
        self.done = False        # EOF delivered

    def received(self, data: bytes) -> None:
        """src sent data: queue it for rtt/2 later; stop reading at a full window."""
        sent = max(self.loop.time(), self.not_before)
        self.queue.append((sent + self.half, data))
        self.unacked += len(data)
        self.acks.append((sent + 2 * self.half, len(data)))
        self._arm_ack()
        self._arm_flush()
        self._steer()

    def eof(self) -> None:
        """src closed its side: pass the EOF on after the data before it."""
        self.queue.append((max(self.loop.time(), self.not_before) + self.half, None))
        self._arm_flush()

    def connected(self, dst) -> None:
        """The far side is there: deliver what is due."""
        self.dst = dst
        self._arm_flush()

    def _arm_flush(self) -> None:
        if self.flush_timer is None and self.queue and self.dst is not None:
            self.flush_timer = self.loop.call_at(self.queue[0][0], self._flush)

    def _arm_ack(self) -> None:
        if self.ack_timer is None and self.acks:
            self.ack_timer = self.loop.call_at(self.acks[0][0], self._ack)

    def _flush(self) -> None:
        self.flush_timer = None
        now = self.loop.time()
        chunks = []
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            if data is None:
                if chunks:
                    self.dst.write(b"".join(chunks))
                    chunks = []
                self._deliver_eof()
                continue
            chunks.append(data)
        if chunks and not self.dst.is_closing():
            self.dst.write(b"".join(chunks))
        self._arm_flush()

    def _deliver_eof(self) -> None:
        self.done = True
        if self.dst.is_closing():
            return
        if self.dst.can_write_eof():
            self.dst.write_eof()
        else:
            self.dst.close()

    def _ack(self) -> None:
        self.ack_timer = None
        now = self.loop.time()
        while self.acks and self.acks[0][0] <= now:
            self.unacked -= self.acks.popleft()[1]
        self._arm_ack()
        self._steer()

    def room(self) -> int:
        """How many bytes src may send before the window is full."""
        return self.window - self.unacked

    def blocked(self, value: bool) -> None:
        """dst's buffer is full (True) or drained (False)."""
        self.dst_blocked = value
        self._steer()

    def _steer(self) -> None:
        """Read from src only while the window has room and dst keeps up."""
        want = self.unacked < self.window and not self.dst_blocked
        if self.src is None or self.src.is_closing() or want == self.reading:
            return
        self.reading = want
        if want:
            self.src.resume_reading()
        else:
            self.src.pause_reading()

    def cancel(self) -> None:
        for t in (self.flush_timer, self.ack_timer):
            if t is not None:
                t.cancel()
        self.flush_timer = self.ack_timer = None


class Side(asyncio.BufferedProtocol):
    """One socket of a relayed connection; `out` is the direction it feeds, `into` the one
    that writes to it. It reads at most the window's room, so a read cannot overshoot it."""

    READ_MAX = 256 << 10

    def __init__(self, conn: "Connection", out: Direction, into: Direction):
        self.conn, self.out, self.into = conn, out, into
        self.transport = None
        self.buf = memoryview(bytearray(self.READ_MAX))

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.out.src = transport  # asyncio sets TCP_NODELAY: the relay delays, not Nagle
        self.into.connected(transport)

    def get_buffer(self, sizehint: int):
        return self.buf[:max(1, min(self.READ_MAX, self.out.room()))]

    def buffer_updated(self, nbytes: int) -> None:
        self.out.received(bytes(self.buf[:nbytes]))

    def eof_received(self) -> bool:
        self.out.eof()
        return True  # keep the other direction open (half-close)

    def pause_writing(self) -> None:
        self.into.blocked(True)

    def resume_writing(self) -> None:
        self.into.blocked(False)

    def connection_lost(self, exc) -> None:
        self.conn.lost(self, exc)


class Connection:
    """One client connection and its connection to sshd, with a Direction each way."""

    def __init__(self, relay: "Relay"):
        loop = asyncio.get_running_loop()
        half = relay.rtt_ms / 2000.0
        self.relay = relay
        self.up = Direction(loop, half, relay.window, "client->host", loop.time() + 2 * half)
        self.down = Direction(loop, half, relay.window, "host->client")
        self.client = Side(self, self.up, self.down)
        self.server = None
        self.closed = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(self.up.not_before - loop.time() + self.up.half,
                        lambda: loop.create_task(self._connect()))

    async def _connect(self) -> None:
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        try:
            _, server = await loop.create_connection(
                lambda: Side(self, self.down, self.up), "127.0.0.1", self.relay.to_port)
        except OSError as e:
            print(f"relay: cannot reach 127.0.0.1:{self.relay.to_port}: {e}", file=sys.stderr, flush=True)
            self.close()
            return
        self.server = server
        client = self.client.transport.get_extra_info("peername") or ("?", "?")
        local = server.transport.get_extra_info("sockname") or ("?", "?")
        print(f"relay: client port {client[1]} reaches sshd from port {local[1]}", file=sys.stderr, flush=True)

    def lost(self, side: Side, exc) -> None:
        """A socket closed: pass its EOF on (if it did not send one), then close both once
        everything queued has been delivered."""
        direction = side.out
        if not direction.done and not any(d is None for _, d in direction.queue):
            direction.eof()
        if self.client.transport.is_closing() and (self.server is None or self.server.transport.is_closing()):
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for d in (self.up, self.down):
            d.cancel()
        for s in (self.client, self.server):
            if s is not None and s.transport is not None:
                s.transport.close()
        self.relay.connections.discard(self)


class Relay:
    """The listening relay of one lab host."""

    def __init__(self, to_port: int, conf: str):
        self.to_port, self.conf = to_port, conf
        self.rtt_ms, self.window = 0.0, DEFAULT_WINDOW
        self.connections = set()
        self.reload()

    def reload(self) -> None:
        """Read rtt_ms and window from the conf file (new connections use them)."""
        with open(self.conf) as f:
            values = json.load(f)
        self.rtt_ms = float(values.get("rtt_ms", 0))
        self.window = int(values.get("window", DEFAULT_WINDOW))
        print(f"relay: rtt {self.rtt_ms:g} ms, window {self.window} bytes", file=sys.stderr, flush=True)

    def accepted(self) -> asyncio.Protocol:
        conn = Connection(self)
        self.connections.add(conn)
        conn.start()
        return conn.client


async def serve(to_port: int, conf: str, ready: str) -> None:
    relay = Relay(to_port, conf)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(relay.accepted, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    loop.add_signal_handler(signal.SIGHUP, relay.reload)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    tmp = f"{ready}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, ready)
    print(f"relay: listening on 127.0.0.1 port {port}, to port {to_port}", file=sys.stderr, flush=True)
    await stop
    server.close()


def main(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--to", type=int, required=True, help="the sshd port behind the relay")
    p.add_argument("--conf", required=True, help='JSON file {"rtt_ms": N, "window": BYTES}, re-read on SIGHUP')
    p.add_argument("--ready", required=True, help="file the listening port is written to")
    args = p.parse_args(argv)
    asyncio.run(serve(args.to, args.conf, args.ready))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
