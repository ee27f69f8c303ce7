"""The architecture zoo: one file per family, each registering its builders on import.

Families are imported in the lecture's order, which is the order `cnnlab models` lists them.
"""

import importlib

_FAMILIES = ("lenet", "alexnet", "zfnet", "vgg", "googlenet", "resnet")

for _family in _FAMILIES:
    importlib.import_module(f"cnnlab.zoo.{_family}")
