"""The local end of a tunnel over a paramiko connection (the ``paramiko`` connection type,
``ssh_tunnel`` and the notebook of a node reached with paramiko): a port on 127.0.0.1 whose
connections go to a port on the node.

Each connection gets a ``direct-tcpip`` channel of the node's current connection, opened again
when it dropped, and is piped by fabric's ``Tunnel``. fabric's own port forward,
``Connection.forward_local``, cannot serve this tunnel, which lives as long as the cluster
object and must outlast dropped connections:

- It is a context manager around a ``with`` block, and takes the local port up front: it binds
  the port in its own thread and never says which port it got, so it cannot take port 0 (a
  free port the system chooses, which the tunnel uses).
- It keeps the Transport that was open when it started. After a drop it opens channels on the
  dead one; the first failure ends its accept thread while the listening socket stays bound,
  so later clients wait in the backlog instead of being refused, and the error surfaces only
  when the ``with`` block exits. Here each client's channel is opened on the node's current
  connection; when that fails on a connection that looked alive, only that connection is
  closed and the channel opened on a new one. A client whose channel cannot be opened at all
  sees its connection closed, and the listener goes on serving the next.
- It polls ``accept`` every 10 ms, adding up to 10 ms to each new connection.
"""

from __future__ import annotations

import socket
import threading

from fabric.tunnels import Tunnel

#: Bytes a forwarded connection moves per read (fabric's Tunnel reads 1 KiB by default).
CHUNK = 65536


class Forward:
    """A listening socket on 127.0.0.1 whose connections go to ``remote_port`` on the node of
    ``node`` (a :class:`~rh_byo.paramiko_node.ParamikoNode`); ``local_port`` 0 takes a free
    port, which ``port`` then tells."""

    def __init__(self, node, remote_port: int, local_port: int):
        self.node, self.remote_port = node, remote_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", local_port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.alive = True
        threading.Thread(target=self._accept, daemon=True, name=f"rh-forward-{self.port}").start()

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                self.alive = False
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as OpenSSH's forwards
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _serve(self, conn: socket.socket, peer) -> None:
        try:
            chan = self.node.on_connection(lambda c: c.transport.open_channel(
                "direct-tcpip", ("127.0.0.1", self.remote_port), peer, timeout=15))
        except Exception:  # the node or its port is gone: the client sees a closed connection
            conn.close()
            return
        tunnel = Tunnel(channel=chan, sock=conn, finished=threading.Event())
        tunnel.socket_chunk_size = tunnel.channel_chunk_size = CHUNK
        tunnel.run()  # in this connection's own thread; it closes both ends when one does

    def close(self) -> None:
        """Stop listening (connections already piped end with the node's connection)."""
        self.alive = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        self.sock.close()
