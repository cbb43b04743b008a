"""The size bounds of the team's messages, read from the generated seqwm_msgs classes, so each
.msg file stays the one place they are declared (agent validation, the bridge's clipping)."""
from __future__ import annotations

import functools
import re


@functools.lru_cache(maxsize=None)
def message_bounds(cls_name: str) -> dict[str, int]:
    """Sequence and string bounds of a seqwm_msgs message: `latents`: 5440, ...; a bounded
    string element of a sequence as `<field>.item` (`names.item`: 64). {} where seqwm_msgs is
    not installed (training, evaluation)."""
    try:
        import seqwm_msgs.msg as msgs
    except ImportError:
        return {}
    out = {}
    for name, kind in getattr(msgs, cls_name).get_fields_and_field_types().items():
        seq = re.fullmatch(r'sequence<(.+), (\d+)>', kind)
        if seq:
            out[name] = int(seq.group(2))
            item = re.fullmatch(r'string<(\d+)>', seq.group(1))
            if item:
                out[f'{name}.item'] = int(item.group(1))
            continue
        text = re.fullmatch(r'string<(\d+)>', kind)
        if text:
            out[name] = int(text.group(1))
    return out
