"""Client intake: stop reading from client connections while the server cannot keep up.

Some work a message causes is queued behind routing: the archive writer's database
transactions, above all. When routing outpaces that work for long, the queue has to
end somewhere: dropping the work loses data (an archive entry), growing the queue
loses memory. Holding the intake is the third way: a part of the server that falls
behind holds it, naming a reason; while any reason holds, every client connection
stops reading (``pauseProducing``: the kernel's socket buffers fill and TCP flow
control slows the clients down), connections made meanwhile start paused, and
releasing the last reason resumes them all. Routing of what was already read goes
on, so the queue drains and the holder releases.

Only client connections are held: server-to-server and component streams keep
flowing (a peer would time out), and so does everything already inside the server.
"""


class ClientIntake:
    def __init__(self):
        self._streams = set()
        self._holds = set()

    @property
    def held(self):
        return bool(self._holds)

    def connected(self, stream):
        """A client connection opened (its ``transport`` is set)."""
        self._streams.add(stream)
        if self._holds:
            stream.transport.pauseProducing()

    def disconnected(self, stream):
        self._streams.discard(stream)

    def hold(self, reason):
        """Stop reading from clients until ``release(reason)`` (holding twice is one hold)."""
        if reason in self._holds:
            return
        self._holds.add(reason)
        if len(self._holds) == 1:
            for stream in self._streams:
                stream.transport.pauseProducing()

    def release(self, reason):
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if not self._holds:
            for stream in list(self._streams):
                stream.transport.resumeProducing()
