"""Ableton Link: our own implementation of its network protocol (discovery, ghost-clock
measurement, sessions), so the instrument shares tempo and phase with Ableton Live, Resolume,
Traktor and any other Link peer without a GPL library (Ableton's Link and its Python bindings are
GPL; the protocol facts were read from its published source, the code here is ours).

    wire.py      the messages as bytes (hostile input: WireError)
    timeline.py  a session's timeline and ghost clock
    session.py   the protocol's decisions, without sockets (LinkProtocol, LinkState)
    node.py      the sockets and the thread (LinkNode)
"""

from .node import LinkNode
from .session import LinkState

__all__ = ["LinkNode", "LinkState"]
