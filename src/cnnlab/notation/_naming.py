"""The naming rule of the compact notation: which module name each layer gets.

Layer names (they are API: they become ``state_dict`` keys)
    Caffe's VGG convention, made a rule.  The network is cut into *stages*, each ended by a
    pooling layer (``maxpool``, ``avgpool``, ``gap``):

    - the i-th conv of stage s is ``conv{s}_{i}``; the pooling layer that ends stage s is
      ``pool{s}``;
    - fully connected layers continue the stage count: after VGG's five pools the first is
      ``fc6``, then ``fc7``, ``fc8``.  (An fc that follows convs with no pool in between closes
      their stage first.)
    - every other layer takes the suffix of the latest conv, pool or fc before it, with its
      own prefix: ``relu1_1``, ``bn1_1``, ``norm1_1`` (LRN) after ``conv1_1``; ``norm1``
      after ``pool1`` (Caffe's AlexNet); ``relu6``, ``drop6`` after ``fc6``; before any of
      them the suffix is ``0`` (``bn0`` normalising the input); ``flatten`` is ``flatten``;
    - a name already taken gets a letter: ``relu1_1b``, ``relu1_1c`` ... (after ``z``:
      ``relu1_1_27``...);
    - a layer may carry an explicit ``name=`` instead (it reserves that name; the rule still
      counts the layer).

    So VGG-16 is ``conv1_1, relu1_1, conv1_2, relu1_2, pool1, ..., pool5, flatten, fc6,
    relu6, drop6, fc7, relu7, drop7, fc8``, the names of the VGG team's Caffe models.

A layer's part in the rule is its kind's ``role`` (conv, pool, fc, flatten, marker; every
other kind follows the layer before it) and :meth:`~cnnlab.notation.kinds.Layer.prefix`.
"""

from __future__ import annotations

import dataclasses

from cnnlab.errors import SpecError
from cnnlab.notation.layer import Layer

__all__ = ["assign_names", "canonical_names"]


def _rule_names(layers: tuple[Layer, ...]) -> list[str | None]:
    """The naming rule of the module docstring, before explicit names and collisions."""
    names: list[str | None] = []
    stage, conv_i, suffix = 1, 0, "0"
    for layer in layers:
        if layer.role == "conv":
            conv_i += 1
            suffix = f"{stage}_{conv_i}"
            names.append(f"{layer.prefix()}{suffix}")
        elif layer.role == "pool":
            names.append(f"pool{stage}")
            stage, conv_i, suffix = stage + 1, 0, str(stage)
        elif layer.role == "fc":
            if conv_i:  # convs with no pool after them: the fc starts a new stage
                stage, conv_i = stage + 1, 0
            suffix = str(stage)
            names.append(f"fc{stage}")
            stage += 1
        elif layer.role == "flatten":
            names.append("flatten")
        elif layer.role == "marker":
            names.append(None)
        else:
            names.append(f"{layer.prefix()}{suffix}")
    return names


def _letters(i: int) -> str:
    return chr(ord("a") + i) if i < 26 else f"_{i + 1}"


def assign_names(
    layers: tuple[Layer, ...],
    text: str,
    given: list[str | None] | None = None,
    rule: list[str | None] | None = None,
) -> tuple[str | None, ...]:
    """Each layer's module name: its explicit name (``given``, by default each layer's
    ``name``) or the rule's (``rule``: :func:`_rule_names` of the layers, where the caller has
    it), made unique."""
    if given is None:
        given = [layer.name for layer in layers]
    used: dict[str, Layer] = {}
    for layer, name in zip(layers, given, strict=True):
        if name is not None:
            if name in used:
                raise SpecError(f"the name {name!r} is used twice", text, layer.pos)
            used[name] = layer
    result: list[str | None] = []
    tried: dict[str, int] = {}  # base -> suffix index to try next (earlier ones are taken)
    rule = _rule_names(layers) if rule is None else rule
    for layer, name, base in zip(layers, given, rule, strict=True):
        if name is not None or base is None:
            result.append(name)
            continue
        i = tried.get(base, 0)
        name = base if i == 0 else base + _letters(i)
        while name in used:
            i += 1
            name = base + _letters(i)
        tried[base] = i + 1
        used[name] = layer
        result.append(name)
    return tuple(result)


def canonical_names(layers: list[Layer], names: tuple, text: str):
    """Canonical form: keep exactly the explicit names the assignment needs.

    The result depends only on the layers and their final names, not on which names the
    input spelled out: start from every layer named explicitly and, left to right, drop each
    name whose removal leaves every layer's name unchanged.  (So ``conv3-8(name=conv1_1)``
    equals ``conv3-8``, and a model read back module by module equals the spec it was built
    from.)
    """
    # (on the names alone: a layer is remade, with its checks, only where its name changes)
    layers_t = tuple(layers)
    rule = _rule_names(layers_t)
    bare = [layer.name if layer.keeps_name else None for layer in layers]
    if assign_names(layers_t, text, bare, rule) == names:  # the usual case: the rule names all
        return _renamed(layers, bare), names
    current = list(names)
    for i, name in enumerate(names):
        # Only a name the rule could produce for this layer (its base, or base + letter)
        # can possibly be dropped; checking that first keeps a long plain Sequential fast.
        if name is None or layers[i].keeps_name or not _from_rule(name, rule[i]):
            continue
        trial = list(current)
        trial[i] = None
        if assign_names(layers_t, text, trial, rule) == names:
            current = trial
    return _renamed(layers, current), names


def _renamed(layers: list[Layer], names: list[str | None]) -> list[Layer]:
    """The layers with these explicit names (the same objects where a name is unchanged)."""
    return [
        layer if layer.name == name else dataclasses.replace(layer, name=name)
        for layer, name in zip(layers, names, strict=True)
    ]


def _from_rule(name: str, base: str | None) -> bool:
    if base is None or not name.startswith(base):
        return False
    rest = name[len(base) :]
    return (
        rest == ""
        or (len(rest) == 1 and rest.isalpha())
        or (rest.startswith("_") and rest[1:].isdigit())
    )
