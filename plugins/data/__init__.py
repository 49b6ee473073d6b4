"""Built-in data components.

``dataset`` kind: ``aligned`` (pix2pix A|B), ``unaligned`` (CycleGAN A/B folders), ``folder``
(unconditional, optional class sub-folders) and ``cityscapes`` (label -> photo with train ids).
Each factory returns a torch Dataset with ``set_epoch(epoch)``, ``check()`` (decode every file,
list the problems) and ``describe()``.

``demo`` kind: the offline demo sets that ``vemkit data get NAME`` materialises from package
registries; building one returns a :class:`~vemkit_plugins.data.demo.DemoSet` (nothing is
downloaded until its ``get`` is called).
"""

from __future__ import annotations

# Options by path: a module is imported only when a spec names one of its components.
_O = "vemkit_plugins.data.options"


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    # The examples (what the registry-wide tests validate) point at the demo sets' roots.
    for name, model, example in (
        ("aligned", f"{_O}:AlignedOptions", {"root": "data/edges2shoes-fmnist", "size": 64}),
        ("unaligned", f"{_O}:UnalignedOptions", {"root": "data/emoji-google2twitter/unpaired"}),
        ("folder", f"{_O}:FolderOptions", {"root": "data/fmnist32", "split": "train", "size": 32}),
        ("cityscapes", f"{_O}:CityscapesOptions", {"root": "data/cityscapes"}),
    ):
        registry.add(
            "dataset",
            name,
            options=model,
            factory=f"vemkit_plugins.data.{name}:build",
            example=example,
        )
    for name, model, attr in (
        ("edges2shoes-fmnist", f"{_O}:Edges2ShoesFmnistOptions", "fmnist:edges2shoes_fmnist"),
        ("emoji-google2twitter", f"{_O}:EmojiGoogle2TwitterOptions", "emoji:emoji_google2twitter"),
        ("fmnist32", f"{_O}:Fmnist32Options", "fmnist:fmnist32"),
    ):
        registry.add("demo", name, options=model, factory=f"vemkit_plugins.data.demo.{attr}")
