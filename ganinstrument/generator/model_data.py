"""The one object every format converter hands to the loader."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelData:
    """A generator described as data: what to build and the weights to put in it.

    `kind` is "sg2" or "sg3"; `init_kwargs` are NVlabs constructor arguments (JSON-able);
    `tensors` is the flat NVlabs-keyed state_dict; `notes` are facts about the conversion worth
    telling the user (they are stored in our safetensors header); `needs_w_avg` asks the loader
    to compute `mapping.w_avg` from the built network because the file did not carry one.
    """

    kind: str
    init_kwargs: dict
    tensors: dict
    notes: list = field(default_factory=list)
    needs_w_avg: bool = False
