"""Time-ordered string ids: sorting by id is sorting by creation time (to the millisecond)."""

import secrets
import time


def new_id(prefix: str) -> str:
    return f"{prefix}_{int(time.time() * 1000):011x}{secrets.token_hex(8)}"
