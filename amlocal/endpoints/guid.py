"""Version-4 GUIDs for request and trace ids, as Azure puts them in `x-request-id`.

From `random.getrandbits` rather than `uuid.uuid4`: uuid4 reads os.urandom (a system call)
and builds a UUID object, about 3x the cost, on the hot path of every scoring request. The
ids only need to be unique, not secret; `random` is reseeded in every forked worker.
"""

from __future__ import annotations

import random

_V4_MASK = ~(0xF000 << 64 | 0xC000 << 48) & ((1 << 128) - 1)
_V4_BITS = 0x4000 << 64 | 0x8000 << 48


def guid() -> str:
    """A random version-4 GUID: xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx."""
    h = "%032x" % (random.getrandbits(128) & _V4_MASK | _V4_BITS)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
